"""Outpainting on the canvas: "Extend canvas…" (pixels per side, undoable) and "Outpaint"
(fill the new, transparent area through the inpainting path).

Receives the session and the prompt panel (whose recipe gives prompt, seed and
sampler), never the window's other parts. Extending pushes an
:class:`~studio.document.canvas_commands.ExtendCanvasCommand` on the session's undo
stack; Outpaint goes through :meth:`Session.outpaint`, so its version is like any
other and its pixels in the old area are the old composite's, exactly.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QSpinBox,
    QWidget,
)

from studio.document.canvas_commands import ExtendCanvasCommand, Padding
from studio.engine.recipe import MAX_SIDE, RecipeError
from studio.session import Session
from studio.ui.prompt_panel import PromptPanel

SIDES = ("Left", "Top", "Right", "Bottom")


def extension_problem(session: Session, padding: Padding) -> str | None:
    """One sentence when the canvas cannot be extended by ``padding``, else None."""
    width, height = session.layers.size
    factor = max(1, int(session.model.size_factor))
    if not len(session.layers) or not width or not height:
        return "The canvas is empty: add a version or an image to it first."
    if not any(padding):
        return "Add pixels on at least one side."
    if any(side % factor for side in padding):
        return f"Each side must grow by a multiple of {factor} pixels (the model's size factor)."
    new_width = width + padding[0] + padding[2]
    new_height = height + padding[1] + padding[3]
    if max(new_width, new_height) > MAX_SIDE:
        return f"The canvas can be at most {MAX_SIDE} pixels on a side."
    if new_width % factor or new_height % factor:
        return (
            f"The new size {new_width}×{new_height} is not a multiple of {factor}; "
            "outpainting needs one."
        )
    return session.model.budget.refusal(new_width, new_height)


class ExtendDialog(QDialog):
    """Pixels to add on each side, stepping by the model's size factor, with the new size
    and (when it cannot be done) the one sentence why, OK disabled."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Extend canvas")
        self._session = session
        factor = max(1, int(session.model.size_factor))
        layout = QFormLayout(self)
        self.sides: list[QSpinBox] = []
        for name in SIDES:
            box = QSpinBox()
            box.setRange(0, MAX_SIDE)
            box.setSingleStep(factor)
            box.setSuffix(" px")
            box.setObjectName(f"extend_{name.lower()}")
            layout.addRow(f"{name}:", box)
            self.sides.append(box)
        self.sides[2].setValue(16 * factor)  # a useful start: widen to the right
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout.addRow(self.summary)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addRow(self.buttons)
        for box in self.sides:
            box.valueChanged.connect(self._update)
        self._update()

    def padding(self) -> Padding:
        left, top, right, bottom = (box.value() for box in self.sides)
        return left, top, right, bottom

    def _update(self) -> None:
        padding = self.padding()
        problem = extension_problem(self._session, padding)
        width, height = self._session.layers.size
        size = f"{width}×{height} → {width + padding[0] + padding[2]}×{height + padding[1] + padding[3]}"
        self.summary.setText(size if problem is None else f"{size}: {problem}")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(problem is None)


class CanvasExtension(QObject):
    """The "Extend canvas…" and "Outpaint" actions (Layer menu; Outpaint also in Generate)."""

    def __init__(self, session: Session, prompt: PromptPanel, window: QWidget) -> None:
        super().__init__(window)
        self._session, self._prompt, self._window = session, prompt, window
        self.extend_action = QAction("Extend canvas…", window)
        self.extend_action.setToolTip(
            "Add empty pixels on any side of the canvas, for Outpaint to fill"
        )
        self.extend_action.triggered.connect(self.ask_and_extend)
        self.outpaint_action = QAction("Outpaint", window)
        self.outpaint_action.setToolTip(
            "Fill the canvas's empty area with the prompt; the pictured part stays exactly as it is"
        )
        self.outpaint_action.triggered.connect(lambda: self.outpaint())

    def place_in(self, layer_menu: QMenu, generate_menu: QMenu) -> None:
        layer_menu.addSeparator()
        layer_menu.addAction(self.extend_action)
        layer_menu.addAction(self.outpaint_action)
        generate_menu.addAction(self.outpaint_action)

    def ask_and_extend(self) -> bool:
        dialog = ExtendDialog(self._session, self._window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        return self.extend(dialog.padding())

    def extend(self, padding: Padding) -> bool:
        """Extend the canvas by ``padding`` (one undo step); False (and a sentence) if refused."""
        problem = extension_problem(self._session, padding)
        if problem is not None:
            self.show_error(problem)
            return False
        session = self._session
        session.undo_stack.push(ExtendCanvasCommand(session.layers, session.mask, padding))
        return True

    def outpaint(self, strength: float = 1.0) -> int | None:
        """Send the outpaint of the canvas's empty area; None (and a sentence) if refused."""
        try:
            return self._session.outpaint(self._prompt.recipe(), strength)
        except RecipeError as exc:
            self.show_error(str(exc))
            return None

    def show_error(self, text: str) -> None:
        QMessageBox.warning(self._window, "Outpaint", text)
