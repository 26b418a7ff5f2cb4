"""Mask mode on the canvas: paint where an inpaint repaints.

Q turns mask mode on and off; B (brush), E (eraser) and M (rectangle) pick a
tool and turn it on. [ and ] change the brush size, Shift+[ and Shift+] its
hardness; Ctrl+Shift+I inverts the mask and Ctrl+Backspace clears it. The right
mouse button (or Alt) does the opposite of the tool: the brush erases, the
rectangle unpaints. Every edit is a command on the session's undo stack; a
stroke is one undo step.

While mask mode is on, the canvas shows the mask as a translucent overlay and
the mouse paints instead of moving layers; a line above the canvas says what
the tool is and which keys change it.
"""

from __future__ import annotations

import enum

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QMouseEvent
from PySide6.QtWidgets import QLabel, QMenu, QSizePolicy, QToolBar, QWidget

from studio.document import layer_commands, mask_commands
from studio.session import Session
from studio.ui.canvas_workspace import CanvasWorkspace
from studio.ui.mask_overlay import MaskOverlayItem, brush_outline, place_outline, rubber_band

MIN_RADIUS, MAX_RADIUS = 1.0, 512.0
SIZE_STEP = 1.25
HARDNESS_STEP = 0.1


class MaskToolKind(enum.Enum):
    """What the left button does in mask mode."""

    BRUSH = "brush"
    ERASER = "eraser"
    RECTANGLE = "rectangle"


class MaskTool(QObject):
    """The mask painting tool of a :class:`CanvasWorkspace` (its canvas, actions, toolbar).

    ``settings_changed()`` fires when the mode, the tool, the size or the hardness changes.
    """

    settings_changed = Signal()

    def __init__(self, session: Session, workspace: CanvasWorkspace, window: QWidget) -> None:
        super().__init__(window)
        self._session, self._workspace = session, workspace
        self.mask = session.mask
        self.kind = MaskToolKind.BRUSH
        self.radius = 16.0
        self.hardness = 0.7
        self._stroke: tuple[int, QPointF, bool] | None = None  # gesture, last point, erase
        self._rect_start: tuple[QPointF, bool] | None = None
        canvas = workspace.view
        self.overlay = MaskOverlayItem(self.mask)
        self.outline = brush_outline()
        self.band = rubber_band()
        for item in (self.overlay, self.outline, self.band):
            canvas.scene().addItem(item)
        self.overlay.setVisible(False)
        self.hint = QLabel()
        self.hint.setStyleSheet("padding: 2px 6px; background: #5a2430; color: white;")
        self.hint.setVisible(False)
        # a long line is cut, never widens the window
        self.hint.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        workspace.page.layout().insertWidget(1, self.hint)
        self._build_actions(window)
        session.view.canvas_shown_changed.connect(lambda shown: shown or self.set_active(False))
        self._update_hint()

    # ---- actions ------------------------------------------------------------------------

    def _build_actions(self, window: QWidget) -> None:
        def action(text: str, keys: str, tip: str, slot, checkable: bool = False) -> QAction:
            made = QAction(text, window, checkable=checkable)
            made.setShortcut(QKeySequence(keys))
            made.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            made.setToolTip(f"{tip} ({keys})")
            (made.toggled if checkable else made.triggered).connect(slot)
            return made

        self.mode_action = action(
            "Mask mode", "Q", "Paint the mask an inpaint repaints", self.set_active, True
        )
        self.brush_action = action(
            "Mask brush", "B", "Paint the mask", lambda: self.choose(MaskToolKind.BRUSH)
        )
        self.eraser_action = action(
            "Mask eraser", "E", "Erase the mask", lambda: self.choose(MaskToolKind.ERASER)
        )
        self.rectangle_action = action(
            "Mask rectangle",
            "M",
            "Drag out a masked rectangle",
            lambda: self.choose(MaskToolKind.RECTANGLE),
        )
        self._tools = QActionGroup(window)  # triggered, not toggled: B again keeps the brush
        # The tool shows as checked only while mask mode is on; off, none looks pressed.
        self._tools.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        for tool_action in (self.brush_action, self.eraser_action, self.rectangle_action):
            tool_action.setCheckable(True)
            self._tools.addAction(tool_action)
        self.invert_action = action("Invert mask", "Ctrl+Shift+I", "Invert the mask", self.invert)
        self.clear_action = action("Clear mask", "Ctrl+Backspace", "Unpaint the mask", self.clear)
        self.smaller_action = action("Smaller brush", "[", "Smaller brush", lambda: self.resize(-1))
        self.larger_action = action("Larger brush", "]", "Larger brush", lambda: self.resize(1))
        self.softer_action = action(
            "Softer brush", "Shift+[", "Softer edge", lambda: self.set_hardness(-HARDNESS_STEP)
        )
        self.harder_action = action(
            "Harder brush", "Shift+]", "Harder edge", lambda: self.set_hardness(HARDNESS_STEP)
        )
        self.softer_action.setShortcuts([QKeySequence("Shift+["), QKeySequence("{")])
        self.harder_action.setShortcuts([QKeySequence("Shift+]"), QKeySequence("}")])

        self.toolbar = QToolBar("Mask", window)
        self.toolbar.setObjectName("mask_toolbar")
        self.toolbar.setMovable(False)
        for tool_action in self.actions()[:6]:  # the brush sizes stay keys and menu items
            self.toolbar.addAction(tool_action)
        self.menu = QMenu("&Mask", window)
        for item in (*self.toolbar.actions()[:4], None, *self.actions()[4:]):
            self.menu.addSeparator() if item is None else self.menu.addAction(item)

    def actions(self) -> list[QAction]:
        """The actions with window-wide shortcuts; the window adds them to itself."""
        return [
            self.mode_action,
            self.brush_action,
            self.eraser_action,
            self.rectangle_action,
            self.invert_action,
            self.clear_action,
            self.smaller_action,
            self.larger_action,
            self.softer_action,
            self.harder_action,
        ]

    # ---- settings -----------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._workspace.view.tool is self

    def set_active(self, active: bool) -> None:
        """Mask mode on (the canvas comes on view, the mouse paints) or off (it moves layers)."""
        canvas = self._workspace.view
        if active:
            self._workspace.show_canvas(True)
            canvas.setFocus()  # so [ and ] reach the brush, not the prompt being typed
        canvas.tool = self if active else None
        self.overlay.setVisible(active)
        self.outline.setVisible(False)
        canvas.viewport().setCursor(
            Qt.CursorShape.CrossCursor if active else Qt.CursorShape.ArrowCursor
        )
        if self.mode_action.isChecked() != active:
            self.mode_action.setChecked(active)
        for kind, action in self._tool_actions().items():
            action.setChecked(active and kind is self.kind)
        self._update_hint()

    def choose(self, kind: MaskToolKind) -> None:
        self.kind = kind
        self.set_active(True)

    def _tool_actions(self) -> dict[MaskToolKind, QAction]:
        return {
            MaskToolKind.BRUSH: self.brush_action,
            MaskToolKind.ERASER: self.eraser_action,
            MaskToolKind.RECTANGLE: self.rectangle_action,
        }

    def resize(self, direction: int) -> None:
        factor = SIZE_STEP if direction > 0 else 1.0 / SIZE_STEP
        self.radius = min(MAX_RADIUS, max(MIN_RADIUS, self.radius * factor))
        self._update_hint()

    def set_hardness(self, delta: float) -> None:
        self.hardness = round(min(1.0, max(0.0, self.hardness + delta)), 2)
        self._update_hint()

    def _update_hint(self) -> None:
        self.hint.setVisible(self.active)
        what = {
            MaskToolKind.BRUSH: "brush",
            MaskToolKind.ERASER: "eraser",
            MaskToolKind.RECTANGLE: "rectangle",
        }[self.kind]
        self.hint.setText(
            f"Mask mode · {what} · size {2 * self.radius:.0f} px · hardness "
            f"{self.hardness:.0%} · B E M tools · [ ] size · Shift+[ ] hardness · "
            "right button erases · Q leaves"
        )
        self.settings_changed.emit()

    # ---- whole-mask edits ---------------------------------------------------------------

    def invert(self) -> None:
        self._push(mask_commands.invert_command(self.mask))
        self.set_active(True)

    def clear(self) -> None:
        self._push(mask_commands.clear_command(self.mask))

    def _push(self, command: mask_commands.MaskEditCommand | None) -> None:
        if command is not None:
            self._session.undo_stack.push(command)

    # ---- the mouse (CanvasTool) ---------------------------------------------------------

    def press(self, point: QPointF, event: QMouseEvent) -> bool:
        button = event.button()
        if button not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return False
        opposite = (
            button == Qt.MouseButton.RightButton
            or event.modifiers() & Qt.KeyboardModifier.AltModifier
        )
        if self.kind is MaskToolKind.RECTANGLE:
            self._rect_start = (point, bool(opposite))
            self.band.setRect(QRectF(point, point))
            self.band.setVisible(True)
            return True
        erase = (self.kind is MaskToolKind.ERASER) != bool(opposite)
        self._stroke = (layer_commands.new_gesture(), point, erase)
        self._paint_to(point)
        return True

    def move(self, point: QPointF, event: QMouseEvent) -> bool:
        if self.kind is not MaskToolKind.RECTANGLE:
            place_outline(self.outline, point, self.radius)
            self.outline.setVisible(True)
        if self._rect_start is not None:
            self.band.setRect(QRectF(self._rect_start[0], point).normalized())
        elif self._stroke is not None:
            self._paint_to(point)
        return True

    def release(self, point: QPointF, event: QMouseEvent) -> bool:
        if self._rect_start is not None:
            start, erase = self._rect_start
            self._rect_start = None
            self.band.setVisible(False)
            # corners snap to the nearest pixel corner: a drag never grows by a sliver
            x0, x1 = sorted((round(start.x()), round(point.x())))
            y0, y1 = sorted((round(start.y()), round(point.y())))
            self._push(
                mask_commands.rectangle_command(self.mask, (x0, y0, x1 - x0, y1 - y0), erase)
            )
        elif self._stroke is not None:
            self._paint_to(point)
            self._stroke = None
        return True

    def _paint_to(self, point: QPointF) -> None:
        assert self._stroke is not None
        gesture, last, erase = self._stroke
        self._push(
            mask_commands.stroke_command(
                self.mask,
                (last.x(), last.y()),
                (point.x(), point.y()),
                self.radius,
                self.hardness,
                erase,
                gesture,
            )
        )
        self._stroke = (gesture, point, erase)
