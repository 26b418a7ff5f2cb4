"""A graphics view with wheel zoom and fit-to-window, shared by the canvases."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QTransform, QWheelEvent
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

ZOOM_STEP = 1.25
MIN_ZOOM = 0.05
MAX_ZOOM = 64.0


class ZoomView(QGraphicsView):
    """A view on its own scene that stays fitted to the window until the user zooms.

    "fit" returns to the fitted mode; the wheel zooms under the cursor within
    ``MIN_ZOOM``..``MAX_ZOOM``. Subclasses say what to fit by overriding
    ``content_rect`` (None while there is nothing to show).
    """

    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._fitted = True
        self.setBackgroundBrush(QBrush(QColor(38, 38, 42)))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setMinimumSize(160, 160)

    def content_rect(self) -> QRectF | None:
        """The scene rectangle that "fit" shows whole; None while there is nothing to fit."""
        return None

    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        self._fitted = True
        rect = self.content_rect()
        if rect is not None:
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
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
