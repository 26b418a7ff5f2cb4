"""The canvas: one image, with wheel zoom, fit and pan."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QTransform, QWheelEvent
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

from studio.ui.qimage import to_pixmap

ZOOM_STEP = 1.25
MIN_ZOOM = 0.05
MAX_ZOOM = 64.0


class Canvas(QGraphicsView):
    """Shows an RGB array at its logical size (the recipe's width×height).

    Previews arrive at latent resolution; they are stretched to the logical size
    so that a preview and the full decode of the same step line up exactly.
    The view stays fitted to the window until the user zooms, and "fit" returns
    to that mode.
    """

    image_shown = Signal()
    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        self._array: np.ndarray | None = None
        self._logical_size: tuple[int, int] | None = None
        self._fitted = True
        self.setBackgroundBrush(QBrush(QColor(38, 38, 42)))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setMinimumSize(160, 160)

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
            if stretched
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

    def current_array(self) -> np.ndarray | None:
        """The array now on screen (what a test or a screenshot should expect)."""
        return self._array

    # ---- zoom and pan ---------------------------------------------------------------

    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        self._fitted = True
        if self._logical_size is not None:
            self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
            self.zoom_changed.emit(self.zoom())

    def zoom_by(self, factor: float) -> None:
        target = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom() * factor))
        factor = target / self.zoom()
        self._fitted = False
        self.scale(factor, factor)
        self.zoom_changed.emit(self.zoom())

    def zoom_actual(self) -> None:
        self._fitted = False
        self.setTransform(QTransform())
        self.zoom_changed.emit(1.0)

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(ZOOM_STEP ** (delta / 120))
        event.accept()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit()
