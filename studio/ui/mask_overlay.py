"""The painted mask drawn over the canvas: translucent red where an inpaint repaints.

The overlay keeps one premultiplied RGBA buffer at the canvas size and, on each
``CanvasMask.changed`` rectangle, recolours only that part and repaints only
that part of the scene. The brush outline is a cosmetic circle (one screen pixel
wide at every zoom) that follows the pointer.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsRectItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from studio.document.canvas_mask import CanvasMask

MASK_COLOUR = (255, 40, 72)
MASK_OPACITY = 0.5
"""How opaque a fully painted pixel is drawn: the layer stays visible under the mask."""


class MaskOverlayItem(QGraphicsItem):
    """Draws ``mask`` over the composite (above it in the scene)."""

    def __init__(self, mask: CanvasMask) -> None:
        super().__init__()
        self._mask = mask
        self._buffer = np.zeros((0, 0, 4), np.uint8)
        self._image: QImage | None = None
        self.setZValue(10)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        mask.changed.connect(self._on_changed)
        self._on_changed(0, 0, *mask.size)

    def boundingRect(self) -> QRectF:
        width, height = self._mask.size
        return QRectF(0, 0, width, height)

    def _on_changed(self, x: int, y: int, w: int, h: int) -> None:
        width, height = self._mask.size
        if self._buffer.shape[:2] != (height, width):
            self.prepareGeometryChange()
            self._buffer = np.zeros((height, width, 4), np.uint8)
            x, y, w, h = 0, 0, width, height
        if not (width and height):
            self._image = None
            return
        alpha = self._mask.pixels[y : y + h, x : x + w].astype(np.float32) * MASK_OPACITY
        region = self._buffer[y : y + h, x : x + w]
        for channel, value in enumerate(MASK_COLOUR):
            region[..., channel] = np.rint(alpha * (value / 255.0)).astype(np.uint8)
        region[..., 3] = np.rint(alpha).astype(np.uint8)
        self._image = QImage(
            self._buffer.data, width, height, 4 * width, QImage.Format.Format_RGBA8888_Premultiplied
        )
        self.update(QRectF(x, y, w, h))

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if self._image is None:
            return
        exposed = option.exposedRect.intersected(self.boundingRect()).toAlignedRect()
        painter.drawImage(exposed, self._image, exposed)


def brush_outline() -> QGraphicsEllipseItem:
    """The circle that shows the brush's size under the pointer."""
    item = QGraphicsEllipseItem()
    pen = QPen(QColor(255, 255, 255, 220))
    pen.setCosmetic(True)
    item.setPen(pen)
    item.setZValue(20)
    item.setVisible(False)
    return item


def place_outline(item: QGraphicsEllipseItem, centre: QPointF, radius: float) -> None:
    item.setRect(QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius))


def rubber_band() -> QGraphicsRectItem:
    """The rectangle being dragged out with the rectangle tool."""
    item = QGraphicsRectItem()
    pen = QPen(QColor(255, 255, 255, 230))
    pen.setCosmetic(True)
    pen.setDashPattern([4.0, 3.0])
    item.setPen(pen)
    item.setBrush(QColor(*MASK_COLOUR, 70))
    item.setZValue(20)
    item.setVisible(False)
    return item
