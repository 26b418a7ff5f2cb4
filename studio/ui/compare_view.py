"""Comparing two versions: side by side, or one canvas flipped between A and B."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from studio.ui.canvas import Canvas


class CompareView(QWidget):
    """Two images, named A and B. "Side by side" shows both; "A/B" shows one and Space flips."""

    closed = Signal()
    side_changed = Signal(int)  # 1 while B alone is on view (A/B mode), else 0

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._images: list[np.ndarray | None] = [None, None]
        self._names = ["A", "B"]
        self._sizes: list[tuple[int, int] | None] = [None, None]
        self._showing_b = False

        self.left = Canvas()
        self.right = Canvas()
        self.left_label = QLabel()
        self.right_label = QLabel()
        self.side_by_side = QRadioButton("Side by side")
        self.toggle = QRadioButton("A/B")
        self.side_by_side.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.side_by_side)
        group.addButton(self.toggle)
        self.flip_button = QPushButton("Show B")
        self.flip_button.setToolTip("Flip between A and B (Space)")
        self.close_button = QPushButton("Close comparison")

        bar = QHBoxLayout()
        bar.addWidget(self.side_by_side)
        bar.addWidget(self.toggle)
        bar.addWidget(self.flip_button)
        bar.addStretch(1)
        bar.addWidget(self.close_button)
        left_col = QVBoxLayout()
        left_col.addWidget(self.left_label)
        left_col.addWidget(self.left, 1)
        self.right_box = QWidget()
        right_col = QVBoxLayout(self.right_box)
        right_col.setContentsMargins(0, 0, 0, 0)
        right_col.addWidget(self.right_label)
        right_col.addWidget(self.right, 1)
        canvases = QHBoxLayout()
        canvases.addLayout(left_col, 1)
        canvases.addWidget(self.right_box, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addLayout(canvases, 1)

        self.toggle.toggled.connect(self._update)
        self.flip_button.clicked.connect(self.flip)
        self.close_button.clicked.connect(self.closed)
        self._update()

    def set_pair(
        self,
        name_a: str,
        image_a: np.ndarray | None,
        name_b: str,
        image_b: np.ndarray | None,
        size_a: tuple[int, int] | None = None,
        size_b: tuple[int, int] | None = None,
        *,
        from_a: bool = True,
    ) -> None:
        """Show a pair; ``from_a=False`` keeps the side A/B is on (a new step of the same pair)."""
        self._names = [name_a, name_b]
        self._images = [image_a, image_b]
        self._sizes = [size_a, size_b]
        if from_a:
            self._showing_b = False
        self._update()

    def flip(self) -> None:
        self._showing_b = not self._showing_b
        if self.side_by_side.isChecked():
            self.toggle.setChecked(True)
        self._update()

    def shown_names(self) -> list[str]:
        """Names of the images now visible, left to right."""
        if self.toggle.isChecked():
            return [self._names[1 if self._showing_b else 0]]
        return list(self._names)

    def _update(self) -> None:
        if self.toggle.isChecked():
            which = 1 if self._showing_b else 0
            self.left_label.setText(f"{'AB'[which]}: {self._names[which]}")
            self.left.show_image(self._images[which], self._sizes[which])
            self.right_box.hide()
            self.flip_button.setText("Show A" if self._showing_b else "Show B")
            self.flip_button.setEnabled(True)
        else:
            self.left_label.setText(f"A: {self._names[0]}")
            self.right_label.setText(f"B: {self._names[1]}")
            self.left.show_image(self._images[0], self._sizes[0])
            self.right.show_image(self._images[1], self._sizes[1])
            self.right_box.show()
            self.flip_button.setText("Flip A/B")
        self.side_changed.emit(1 if self.toggle.isChecked() and self._showing_b else 0)
