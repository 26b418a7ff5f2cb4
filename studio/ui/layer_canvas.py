"""The layered canvas: shows a LayerStack's composite and moves layers with the mouse.

The composite is computed by the stack (numpy, premultiplied) and drawn as a
QImage that wraps its buffer without copying. Each ``LayerStack.changed``
rectangle only marks that part of the scene for repainting; the stack's
compositor recomputes only what changed, once per repaint.

While an edit larger than the preview budget is moving (a drag, an opacity
slider: changes that keep arriving), the canvas draws the stack's reduced
preview, scaled up; ``SETTLE_MS`` after the last change it draws the exact
full-resolution composite again. So a drag stays smooth on a large stack of
blended layers, and what stays on screen is always exact. The preview's caches
are built off the UI thread (``LayerStack.prepare_edit``): brought up to date
whenever the exact composite is drawn, and completed for the pressed layer when
a drag starts, so the first move of a drag costs no more than the next ones.

Dragging with the left button moves the selected layer when the press lands
inside it, otherwise the topmost layer under the cursor (which becomes
selected). Every mouse move pushes a move command with the same gesture
number, so a whole drag is one undo step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPixmap,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from studio.document import compositing, layer_commands
from studio.document.layers import LayerStack
from studio.ui.zoom_view import ZoomView

CHECKER = 8
SETTLE_MS = 150
"""How long after the last change an edit counts as stopped and the exact composite is drawn."""


class CompositeItem(QGraphicsItem):
    """Paints the stack's composite, recomputing it lazily when a change was announced.

    A large change shows the stack's preview until no change has come for
    ``SETTLE_MS``; then the exact composite replaces it.
    """

    def __init__(self, stack: LayerStack) -> None:
        super().__init__()
        self._stack = stack
        self._image: QImage | None = None
        self._buffer: np.ndarray | None = None
        self._factor = 1
        self._stale = True
        self._settle_timer = QTimer()
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(SETTLE_MS)
        self._settle_timer.timeout.connect(self.settle)

    def boundingRect(self) -> QRectF:
        w, h = self._stack.size
        return QRectF(0, 0, w, h)

    def invalidate(self, rect: QRectF | None = None) -> None:
        self._stale = True
        area = rect.width() * rect.height() if rect is not None else math.inf
        if self._settle_timer.isActive() or (
            area > compositing.PREVIEW_PIXELS and self._stack.preview_factor > 1
        ):
            self._settle_timer.start()  # restarts: the edit is still moving
        self.update(rect if rect is not None else self.boundingRect())

    @property
    def is_preview(self) -> bool:
        """Whether what is drawn now is the reduced preview (an edit is still moving)."""
        return self._factor > 1

    def settle(self) -> None:
        """Draw the exact composite now (the edit stopped)."""
        self._settle_timer.stop()
        if self._factor > 1 or self._stale:
            self._stale = True
            self.update()

    def composite(self) -> QImage | None:
        """The composite as drawn (recomputed first if a change is pending)."""
        if self._stale:
            self._stale = False
            w, h = self._stack.size
            if w == 0 or h == 0:
                self._image = self._buffer = None
                self._factor = 1
                return None
            if self._settle_timer.isActive():
                self._buffer, self._factor = self._stack.composite_preview()
            else:
                self._buffer, self._factor = self._stack.composite_premultiplied(), 1
                if self._stack.preview_factor > 1:
                    self._stack.prepare_edit()  # the next drag's preview, in the background
            rows, cols = self._buffer.shape[:2]
            self._image = QImage(
                self._buffer.data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888_Premultiplied
            )
        return self._image

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionGraphicsItem,
        widget: QWidget | None = None,
    ) -> None:
        image = self.composite()
        if image is None:
            return
        exposed = option.exposedRect.intersected(self.boundingRect()).toAlignedRect()
        if self._factor == 1:
            painter.drawImage(exposed, image, exposed)
            return
        f = self._factor
        source = QRectF(exposed.x() / f, exposed.y() / f, exposed.width() / f, exposed.height() / f)
        painter.drawImage(QRectF(exposed), image, source)


class CanvasTool(Protocol):
    """What takes the mouse instead of moving layers (the mask brush): each returns
    whether it took the event; points are in canvas (scene) coordinates."""

    def press(self, point: QPointF, event: QMouseEvent) -> bool: ...
    def move(self, point: QPointF, event: QMouseEvent) -> bool: ...
    def release(self, point: QPointF, event: QMouseEvent) -> bool: ...


class LayerCanvas(ZoomView):
    """The composite of a LayerStack on a checkerboard, with wheel zoom, fit and layer moves.

    ``current_layer`` returns the id of the selected layer ("" for none);
    ``layer_picked(id)`` asks the owner to select the layer a click landed on.
    While :attr:`tool` is set, the mouse goes to it first (see :class:`CanvasTool`).
    """

    layer_picked = Signal(str)

    def __init__(
        self,
        stack: LayerStack,
        undo_stack: QUndoStack,
        current_layer: Callable[[], str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._stack = stack
        self._undo = undo_stack
        self._current_layer = current_layer
        self.item = CompositeItem(stack)
        self.scene().addItem(self.item)
        self._drag: tuple[str, QPointF, tuple[int, int], int] | None = None
        self.tool: CanvasTool | None = None
        self.viewport().setMouseTracking(True)  # a tool's outline follows the pointer
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self._checker = _checkerboard()
        self.setToolTip("Drag to move the selected layer; the wheel zooms.")
        stack.changed.connect(self._on_changed)
        stack.size_changed.connect(self._on_size)
        self._on_size(*stack.size)

    # ---- following the stack -------------------------------------------------------------

    def _on_changed(self, x: int, y: int, w: int, h: int) -> None:
        self.item.invalidate(QRectF(x, y, w, h))

    def _on_size(self, width: int, height: int) -> None:
        self.item.prepareGeometryChange()
        self.item.invalidate()
        self.scene().setSceneRect(QRectF(0, 0, max(width, 1), max(height, 1)))
        if self._fitted:
            self.fit()

    def composite_image(self) -> QImage | None:
        """What the canvas draws now (for tests and screenshots)."""
        return self.item.composite()

    # ---- drawing ----------------------------------------------------------------------

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        super().drawBackground(painter, rect)
        w, h = self._stack.size
        if w and h:
            painter.save()
            painter.setBrushOrigin(0, 0)
            painter.fillRect(QRectF(0, 0, w, h).intersected(rect), QBrush(self._checker))
            painter.restore()

    # ---- zoom ---------------------------------------------------------------------------

    def content_rect(self) -> QRectF | None:
        w, h = self._stack.size
        return QRectF(0, 0, w, h) if w and h else None

    # ---- moving layers ------------------------------------------------------------------

    def layer_at(self, point: QPointF) -> str:
        """The topmost visible layer with an opaque pixel at scene ``point`` ("" for none)."""
        x, y = int(np.floor(point.x())), int(np.floor(point.y()))
        for layer in reversed(self._stack.layers):
            lx, ly = x - layer.offset[0], y - layer.offset[1]
            if (
                layer.visible
                and 0 <= lx < layer.width
                and 0 <= ly < layer.height
                and layer.pixels[ly, lx, 3] > 0
            ):
                return layer.id
        return ""

    def begin_move(self, scene_point: QPointF) -> bool:
        """Start moving a layer; False if there is none to move.

        A press inside the selected layer's rectangle moves it even where other
        layers cover it; a press elsewhere picks the topmost layer under the cursor.
        """
        layer_id = self._current_layer()
        if not layer_id or not self._inside(layer_id, scene_point):
            under = self.layer_at(scene_point)
            if under and under != layer_id:
                layer_id = under
                self.layer_picked.emit(layer_id)
        if not layer_id:
            return False
        offset = self._stack.layer(layer_id).offset
        self._drag = (layer_id, scene_point, offset, layer_commands.new_gesture())
        self._stack.prepare_edit(layer_id)
        return True

    def _inside(self, layer_id: str, point: QPointF) -> bool:
        layer = self._stack.layer(layer_id)
        x, y = point.x() - layer.offset[0], point.y() - layer.offset[1]
        return 0 <= x < layer.width and 0 <= y < layer.height

    def move_to(self, scene_point: QPointF) -> None:
        if self._drag is None:
            return
        layer_id, start, (ox, oy), gesture = self._drag
        delta = scene_point - start
        target = (ox + round(delta.x()), oy + round(delta.y()))
        if target != self._stack.layer(layer_id).offset:
            self._undo.push(layer_commands.move_layer(self._stack, layer_id, target, gesture))

    def end_move(self) -> None:
        self._drag = None
        self.item.settle()  # the drag stopped: the exact composite, without waiting

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.tool is not None and self.tool.press(self._scene_point(event), event):
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self.begin_move(
            self.mapToScene(event.position().toPoint())
        ):
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self.tool is not None and self.tool.move(self._scene_point(event), event):
            event.accept()
            return
        if self._drag is not None:
            self.move_to(self.mapToScene(event.position().toPoint()))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self.tool is not None and self.tool.release(self._scene_point(event), event):
            event.accept()
            return
        if self._drag is not None and event.button() == Qt.MouseButton.LeftButton:
            self.move_to(self.mapToScene(event.position().toPoint()))
            self.end_move()
            self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def _scene_point(self, event: QMouseEvent) -> QPointF:
        return self.mapToScene(event.position().toPoint())


def _checkerboard() -> QPixmap:
    pixmap = QPixmap(2 * CHECKER, 2 * CHECKER)
    pixmap.fill(QColor(92, 92, 98))
    painter = QPainter(pixmap)
    light = QColor(128, 128, 134)
    painter.fillRect(0, 0, CHECKER, CHECKER, light)
    painter.fillRect(CHECKER, CHECKER, CHECKER, CHECKER, light)
    painter.end()
    return pixmap
