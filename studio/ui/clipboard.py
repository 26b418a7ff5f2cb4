"""Copy what is on view to the clipboard, and paste a clipboard image as a new layer.

Ctrl+C copies the picture on view: the layered canvas's composite when the canvas
is up, otherwise the version's step at the recipe's size, as the view draws it (in
a comparison, B's when A/B shows B alone, else A's).
Ctrl+V puts a clipboard image on the canvas as a layer (one undo step). Both keys
act while the focus is in the picture area, so text fields keep their own copy
and paste; the Edit menu entries work from anywhere.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QWidget

from studio.document.imageio import MAX_IMPORT_PIXELS
from studio.document.layers import Layer
from studio.session import Session
from studio.ui.canvas_workspace import CanvasWorkspace, at_recipe_size
from studio.ui.qimage import to_qimage


class ClipboardActions(QObject):
    """ "Copy image" and "Paste as layer", with shortcuts scoped to ``picture_area``."""

    def __init__(
        self, session: Session, workspace: CanvasWorkspace, picture_area: QWidget, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self._session, self._workspace = session, workspace
        self.copy_action = QAction("Copy image", parent)
        self.paste_action = QAction("Paste image as layer", parent)
        for action, key in (
            (self.copy_action, QKeySequence.StandardKey.Copy),
            (self.paste_action, QKeySequence.StandardKey.Paste),
        ):
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            picture_area.addAction(action)
        self.copy_action.triggered.connect(self.copy_image)
        self.paste_action.triggered.connect(self.paste_image)

    def picture_on_view(self) -> np.ndarray | None:
        session = self._session
        if session.view.canvas_shown:
            layers = self._workspace.layers
            return layers.composite_rgba() if len(layers) else None
        _version, frame, _at_end = session.on_view()
        if frame.image is None or frame.size is None:
            return None
        return at_recipe_size(frame.image, frame.size)

    def copy_image(self) -> bool:
        pixels = self.picture_on_view()
        if pixels is None:
            self._session.status.emit("There is no picture to copy.", 5000)
            return False
        QGuiApplication.clipboard().setImage(_qimage(pixels))
        height, width = pixels.shape[:2]
        self._session.status.emit(f"Copied the picture ({width}×{height}).", 5000)
        return True

    def paste_image(self) -> Layer | None:
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self._session.status.emit("The clipboard holds no image.", 5000)
            return None
        if image.width() * image.height() > MAX_IMPORT_PIXELS:
            self._session.status.emit(
                f"The clipboard image is {image.width()}×{image.height()}, larger than the "
                f"{MAX_IMPORT_PIXELS // 1_000_000} megapixels a layer may have.",
                8000,
            )
            return None
        layer = self._workspace.add_layer(Layer(_rgba(image), name="Pasted image"))
        self._workspace.show_canvas(True)
        self._session.status.emit("Pasted the clipboard image as a layer.", 5000)
        return layer


def _qimage(pixels: np.ndarray) -> QImage:
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        rgba = np.ascontiguousarray(pixels)
        height, width = rgba.shape[:2]
        return QImage(rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
    return to_qimage(pixels)


def _rgba(image: QImage) -> np.ndarray:
    converted = image.convertToFormat(QImage.Format.Format_RGBA8888)
    width, height = converted.width(), converted.height()
    row = converted.bytesPerLine()
    data = np.frombuffer(converted.constBits(), np.uint8, count=row * height)
    return data.reshape(height, row)[:, : width * 4].reshape(height, width, 4).copy()
