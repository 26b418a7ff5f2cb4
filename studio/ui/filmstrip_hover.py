"""The filmstrip's hover preview: rest the pointer on a thumbnail and its full decode pops up.

:class:`FilmstripHover` watches a filmstrip (a ``QListWidget``). After the pointer has
rested on one thumbnail for ``HOVER_MS`` it emits ``requested(row)``; whoever answers
(the version page, from the session's decode cache or the worker) calls
:meth:`FilmstripHover.show_image` with that row's image, now or when the decode arrives.
Nothing here waits: an answer for a row the pointer has left is dropped, and leaving the
filmstrip hides the popup.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem

from studio.ui.qimage import to_pixmap

HOVER_MS = 300
POPUP_SIDE = 256
"""The popup's longer side in pixels: a bigger image is shrunk to it, a smaller one (the
bundled model's 64×64) enlarged, so the popup is always larger than the thumbnail."""


class FilmstripHover(QObject):
    """A tooltip-like popup with the full decode of the hovered step (see the module)."""

    requested = Signal(int)

    def __init__(self, filmstrip: QListWidget) -> None:
        super().__init__(filmstrip)
        self.filmstrip = filmstrip
        self.row: int | None = None
        self.image: np.ndarray | None = None  # the decode on show, before it is scaled
        self.popup = QLabel(filmstrip, Qt.WindowType.ToolTip)
        self.popup.setStyleSheet("background: #202020; border: 1px solid #808080; padding: 2px")
        self._timer = QTimer(self, singleShot=True, interval=HOVER_MS)
        self._timer.timeout.connect(self._rested)
        filmstrip.setMouseTracking(True)
        filmstrip.itemEntered.connect(self._entered)
        filmstrip.viewport().installEventFilter(self)

    def show_image(self, row: int, image: np.ndarray) -> None:
        """Show ``image`` for ``row`` if the pointer still rests there."""
        item = self.filmstrip.item(row)
        if row != self.row or item is None or self._timer.isActive():
            return
        self.image = image
        pixmap = to_pixmap(np.ascontiguousarray(image[..., :3])).scaled(
            POPUP_SIDE,
            POPUP_SIDE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.popup.setPixmap(pixmap)
        self.popup.adjustSize()
        rect = self.filmstrip.visualItemRect(item)
        above = QPoint(rect.left(), rect.top() - self.popup.height() - 4)
        self.popup.move(self.filmstrip.viewport().mapToGlobal(above))
        self.popup.show()

    def hide(self) -> None:
        self._timer.stop()
        self.row = None
        self.popup.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.Leave, QEvent.Type.MouseButtonPress, QEvent.Type.Wheel):
            self.hide()
        return False

    def _entered(self, item: QListWidgetItem) -> None:
        row = self.filmstrip.row(item)
        if row == self.row and (self._timer.isActive() or self.popup.isVisible()):
            return
        self.popup.hide()
        self.row = row
        self._timer.start()

    def _rested(self) -> None:
        if self.row is not None:
            self.requested.emit(self.row)
