"""The timeline scrubber: a slider over the stored steps, a filmstrip of thumbnails, play and branch."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QIcon
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.ui.filmstrip_hover import FilmstripHover
from studio.ui.qimage import to_thumbnail

THUMB = 44
PLAY_INTERVAL_MS = 90
SETTLE_MS = 220
PLACEHOLDER_GREY = 64


class Timeline(QWidget):
    """Scrubs the trajectory of the version on the canvas.

    Positions are indices into the version's stored steps (inherited steps first),
    after the ``forward`` frames of an image-to-image version (the init image pushed
    into noise, see :mod:`studio.forward_process`): those read "forward j / F",
    have a red tint in the filmstrip and are no stored steps (branching from one
    branches from the first denoising step).
    ``position_changed`` fires at once on every move (the canvas shows the stored
    preview); ``position_settled`` fires once the slider has rested for
    ``SETTLE_MS`` (the window then asks the worker for a full decode). Resting the
    pointer on a thumbnail pops up that step's full decode (:attr:`hover`).
    Labels read "step k / N": step k of an N-step run, never a k-step image.
    """

    position_changed = Signal(int)
    position_settled = Signal(int)
    branch_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._step_numbers: list[int] = []
        self._total = 0
        self._forward = 0
        self._follow_live = True

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(5)
        self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.slider.setToolTip("Scrub through the steps (←/→ one step, Home/End to the ends)")
        self.label = QLabel("no steps")
        self.label.setMinimumWidth(110)
        self.play_button = QToolButton()
        self.play_button.setText("▶")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play: static → image")
        self.branch_button = QPushButton("Branch from this step")
        self.branch_button.setToolTip(
            "Resume from this step with changed settings; creates a child version"
        )
        self.branch_button.setEnabled(False)

        self.filmstrip = QListWidget()
        self.filmstrip.setViewMode(QListView.ViewMode.IconMode)
        self.filmstrip.setFlow(QListView.Flow.LeftToRight)
        self.filmstrip.setWrapping(False)
        self.filmstrip.setMovement(QListView.Movement.Static)
        self.filmstrip.setIconSize(QSize(THUMB, THUMB))
        self.filmstrip.setSpacing(2)
        self.filmstrip.setUniformItemSizes(True)
        self.filmstrip.setFixedHeight(THUMB + 46)  # icon, step number and the horizontal scroll bar
        self.filmstrip.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.filmstrip.setHorizontalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.filmstrip.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.filmstrip.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.hover = FilmstripHover(self.filmstrip)

        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.label)
        controls.addWidget(self.branch_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        layout.addLayout(controls)
        layout.addWidget(self.filmstrip)

        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(lambda: self.position_settled.emit(self.slider.value()))
        self._player = QTimer(self)
        self._player.setInterval(PLAY_INTERVAL_MS)
        self._player.timeout.connect(self._advance)

        self.slider.valueChanged.connect(self._on_value_changed)
        self.filmstrip.currentRowChanged.connect(self._on_film_row)
        self.filmstrip.customContextMenuRequested.connect(self._film_menu)
        self.play_button.toggled.connect(self._on_play)
        self.branch_button.clicked.connect(lambda: self.branch_requested.emit(self.slider.value()))

    # ---- content ---------------------------------------------------------------

    def set_steps(
        self,
        step_numbers: list[int],
        total: int,
        thumbs: list[np.ndarray | None],
        position: int | None = None,
        forward: int = 0,
    ) -> None:
        """Show a trajectory: its 0-based step numbers, the run length and one thumbnail per
        position (the ``forward`` frames' first; None: a placeholder until
        :meth:`replace_thumbnails` brings it)."""
        self._step_numbers = list(step_numbers)
        self._total = total
        self._forward = forward
        self.filmstrip.blockSignals(True)
        self.filmstrip.clear()
        for j, thumb in enumerate(thumbs[:forward]):
            self.filmstrip.addItem(self._forward_item(j, thumb))
        for number, thumb in zip(step_numbers, thumbs[forward:], strict=True):
            self.filmstrip.addItem(self._thumb_item(number, thumb))
        self.filmstrip.blockSignals(False)
        last = max(0, self.count() - 1)
        self.slider.blockSignals(True)
        self.slider.setRange(0, last)
        self.slider.setValue(last if position is None else min(position, last))
        self.slider.blockSignals(False)
        self._follow_live = position is None or position >= last
        self.branch_button.setEnabled(bool(step_numbers))
        self.play_button.setToolTip(
            "Play: the layer → static → image" if forward else "Play: static → image"
        )
        self._sync_label_and_strip(self.slider.value())

    def append_step(self, step_number: int, thumb: np.ndarray) -> None:
        """A new step arrived for the shown version; follow it if the user is at the end."""
        was_at_end = self._follow_live or self.slider.value() >= self.slider.maximum()
        self._step_numbers.append(step_number)
        self.filmstrip.addItem(self._thumb_item(step_number, thumb))
        self.slider.blockSignals(True)
        self.slider.setMaximum(self.count() - 1)
        if was_at_end:
            self.slider.setValue(self.slider.maximum())
        self.slider.blockSignals(False)
        self.branch_button.setEnabled(True)
        self._sync_label_and_strip(self.slider.value())

    def replace_thumbnails(self, thumbs: dict[int, np.ndarray]) -> None:
        """Put thumbnails (by position) in place of the placeholders that waited for them."""
        for row, thumb in thumbs.items():
            item = self.filmstrip.item(row)
            if item is not None:
                item.setIcon(_icon(thumb))

    def clear(self) -> None:
        self.set_steps([], 0, [])
        self.label.setText("no steps")

    def position(self) -> int:
        return self.slider.value()

    def set_position(self, position: int) -> None:
        self.slider.setValue(position)

    def step_number(self, position: int | None = None) -> int | None:
        """The stored step at ``position`` (0-based); None for a forward frame."""
        position = self.slider.value() if position is None else position
        index = position - self._forward
        if 0 <= index < len(self._step_numbers):
            return self._step_numbers[index]
        return None

    def is_forward(self, position: int | None = None) -> bool:
        position = self.slider.value() if position is None else position
        return 0 <= position < self._forward

    def count(self) -> int:
        return self._forward + len(self._step_numbers)

    # ---- internals -------------------------------------------------------------------

    def _thumb_item(self, step_number: int, thumb: np.ndarray | None) -> QListWidgetItem:
        item = QListWidgetItem(_icon(thumb), str(step_number + 1))
        item.setToolTip(f"step {step_number + 1} / {self._total}")
        item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
        return item

    def _forward_item(self, j: int, thumb: np.ndarray | None) -> QListWidgetItem:
        item = QListWidgetItem(_icon(thumb), f"f{j + 1}")
        item.setToolTip(
            f"forward {j + 1} / {self._forward}: the layer pushed into noise (not a stored step)"
        )
        item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
        item.setBackground(QBrush(QColor(120, 40, 56)))
        return item

    def _on_value_changed(self, position: int) -> None:
        self._follow_live = position >= self.slider.maximum()
        self._sync_label_and_strip(position)
        self.position_changed.emit(position)
        self._settle.start()

    def _sync_label_and_strip(self, position: int) -> None:
        number = self.step_number(position)
        if self.is_forward(position):
            self.label.setText(f"forward {position + 1} / {self._forward}")
        else:
            self.label.setText(
                "no steps" if number is None else f"step {number + 1} / {self._total}"
            )
        self.branch_button.setText(
            "Branch from first step" if self.is_forward(position) else "Branch from this step"
        )
        if self.filmstrip.currentRow() != position and position < self.filmstrip.count():
            self.filmstrip.blockSignals(True)
            self.filmstrip.setCurrentRow(position)
            self.filmstrip.blockSignals(False)
            self.filmstrip.scrollToItem(self.filmstrip.item(position))

    def _on_film_row(self, row: int) -> None:
        if row >= 0:
            self.slider.setValue(row)

    def _film_menu(self, point: QPoint) -> None:
        item = self.filmstrip.itemAt(point)
        if item is None:
            return
        row = self.filmstrip.row(item)
        menu = QMenu(self)
        number = self.step_number(row)
        if number is None:  # a forward frame: the first denoising step is where a branch starts
            number = self.step_number(self._forward)
            if number is None:
                return
        action = menu.addAction(f"Branch from step {number + 1}")
        chosen = menu.exec(self.filmstrip.mapToGlobal(point))
        if chosen is action:
            self.slider.setValue(row)
            self.branch_requested.emit(row)

    def _on_play(self, playing: bool) -> None:
        self.play_button.setText("❚❚" if playing else "▶")
        if playing:
            if self.slider.value() >= self.slider.maximum():
                self.slider.setValue(0)
            self._player.start()
        else:
            self._player.stop()

    def _advance(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.play_button.setChecked(False)
            return
        self.slider.setValue(self.slider.value() + 1)


def _icon(thumb: np.ndarray | None) -> QIcon:
    """A filmstrip icon: the thumbnail, or a grey placeholder while it is being read."""
    if thumb is None:
        thumb = np.full((THUMB, THUMB, 3), PLACEHOLDER_GREY, np.uint8)
    return QIcon(to_thumbnail(thumb, THUMB))
