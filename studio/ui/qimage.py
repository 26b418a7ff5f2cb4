"""numpy RGB arrays to Qt images, for display only."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def to_qimage(array: np.ndarray) -> QImage:
    """A deep-copied QImage of a uint8 HxWx3 (or HxW) array."""
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:
        array = array[:, :, :3]
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    image = QImage(array.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()  # QImage borrows the buffer; the copy owns its pixels


def to_pixmap(array: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(array))


def to_thumbnail(array: np.ndarray, side: int) -> QPixmap:
    """A pixmap of at most ``side``×``side``; small previews are scaled up smoothly to fill it."""
    image = to_qimage(array).scaled(
        side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    return QPixmap.fromImage(image)
