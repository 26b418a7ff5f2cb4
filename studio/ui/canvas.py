"""The canvas: one image, with wheel zoom, fit and pan."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QTransform
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsView, QWidget

from studio.ui.qimage import to_pixmap
from studio.ui.zoom_view import ZoomView


class Canvas(ZoomView):
    """Shows an RGB array at its logical size (the recipe's width×height).

    Previews arrive at latent resolution; they are stretched to the logical size
    so that a preview and the full decode of the same step line up exactly.
    The view stays fitted to the window until the user zooms, and "fit" returns
    to that mode.
    """

    image_shown = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        self._array: np.ndarray | None = None
        self._logical_size: tuple[int, int] | None = None
        self._crisp = False
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)

    # ---- content ----------------------------------------------------------------

    def show_image(
        self, array: np.ndarray | None, logical_size: tuple[int, int] | None = None
    ) -> None:
        """Show ``array`` stretched to ``logical_size`` (width, height); None clears the canvas."""
        self._array = array
        if array is None:
            self._item.setPixmap(to_pixmap(np.zeros((1, 1, 3), np.uint8)))
            self._item.setVisible(False)
            self.image_shown.emit()
            return
        height, width = array.shape[:2]
        logical = logical_size or (width, height)
        self._item.setVisible(True)
        # Stretched latent-resolution previews are smoothed; full images keep crisp pixels.
        stretched = width < logical[0] or height < logical[1]
        self._item.setTransformationMode(
            Qt.TransformationMode.SmoothTransformation
            if stretched and not self._crisp
            else Qt.TransformationMode.FastTransformation
        )
        self._item.setPixmap(to_pixmap(array))
        self._item.setTransform(QTransform.fromScale(logical[0] / width, logical[1] / height))
        if logical != self._logical_size:
            self._logical_size = logical
            self.scene().setSceneRect(QRectF(0, 0, logical[0], logical[1]))
            if self._fitted:
                self.fit()
        self.image_shown.emit()

    def set_crisp(self, crisp: bool) -> None:
        """Nearest-neighbour at every zoom (each pixel a sharp square), or smooth scaling."""
        self._crisp = crisp
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not crisp)
        if self._array is not None:
            self.show_image(self._array, self._logical_size)

    def is_crisp(self) -> bool:
        return self._crisp

    def current_array(self) -> np.ndarray | None:
        """The array now on screen (what a test or a screenshot should expect)."""
        return self._array

    # ---- zoom and pan ---------------------------------------------------------------

    def content_rect(self) -> QRectF | None:
        return self.sceneRect() if self._logical_size is not None else None
