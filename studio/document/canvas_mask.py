"""The canvas's inpainting mask: one grey layer-like image over the whole canvas.

The mask is uint8 at the canvas size (the layer stack's), 255 where an inpaint
repaints and 0 where the layer is kept. It follows the stack's size: growing the
canvas adds unpainted pixels, shrinking it crops. Like :class:`LayerStack` it is
edited only through undo commands (:mod:`studio.document.mask_commands`) and
announces every change with the rectangle that changed, so the overlay repaints
only that and the project saves it (:class:`~studio.document.project.Project`).

The brush is pure numpy (:func:`dab`, :func:`stroke`): a round dab whose
opacity is 1 inside ``hardness × radius`` and falls smoothly to 0 at the radius;
painting raises the mask towards 255, erasing lowers it towards 0, so going over
the same spot twice within one stroke never darkens the edge twice.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QObject, Signal

from studio.document.layers import LayerStack

Rect = tuple[int, int, int, int]
"""x, y, width, height in canvas pixels."""

REPAINT = 255


class CanvasMask(QObject):
    """The mask over ``layers``'s canvas; ``changed(x, y, w, h)`` after every change."""

    changed = Signal(int, int, int, int)

    def __init__(self, layers: LayerStack, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._layers = layers
        width, height = layers.size
        self._pixels = np.zeros((height, width), np.uint8)
        layers.size_changed.connect(self._follow_size)

    # ---- reading --------------------------------------------------------------------------

    @property
    def pixels(self) -> np.ndarray:
        """The whole mask (H×W uint8, read-only view)."""
        view = self._pixels.view()
        view.flags.writeable = False
        return view

    @property
    def size(self) -> tuple[int, int]:
        return int(self._pixels.shape[1]), int(self._pixels.shape[0])

    def is_empty(self) -> bool:
        return not self._pixels.any()

    def patch(self, rect: Rect) -> np.ndarray:
        """A copy of the mask inside ``rect`` (clipped to the canvas)."""
        x, y, w, h = clip(rect, self.size)
        return self._pixels[y : y + h, x : x + w].copy()

    def crop(self, offset: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        """The mask under a rectangle of the canvas at ``offset`` of ``size`` (w, h), such as
        a layer's; what lies outside the canvas is unpainted."""
        width, height = size
        out = np.zeros((height, width), np.uint8)
        x, y, w, h = clip((offset[0], offset[1], width, height), self.size)
        if w and h:
            ox, oy = x - offset[0], y - offset[1]
            out[oy : oy + h, ox : ox + w] = self._pixels[y : y + h, x : x + w]
        return out

    # ---- changing (for the undo commands and the project) ---------------------------------

    def put(self, rect: Rect, pixels: np.ndarray) -> None:
        """Set the mask inside ``rect`` to ``pixels`` (the part inside the canvas)."""
        x0, y0 = rect[0], rect[1]
        x, y, w, h = clip(rect, self.size)
        if not (w and h):
            return
        self._pixels[y : y + h, x : x + w] = pixels[y - y0 : y - y0 + h, x - x0 : x - x0 + w]
        self.changed.emit(x, y, w, h)

    def replace(self, pixels: np.ndarray | None) -> None:
        """The whole mask at once (a project being opened); None or another size: unpainted."""
        width, height = self.size
        if pixels is None or pixels.shape != (height, width):
            pixels = np.zeros((height, width), np.uint8)
        self.put((0, 0, width, height), np.asarray(pixels, np.uint8))

    def _follow_size(self, width: int, height: int) -> None:
        grown = np.zeros((height, width), np.uint8)
        h, w = min(height, self._pixels.shape[0]), min(width, self._pixels.shape[1])
        grown[:h, :w] = self._pixels[:h, :w]
        self._pixels = grown
        self.changed.emit(0, 0, width, height)


def clip(rect: Rect, size: tuple[int, int]) -> Rect:
    """``rect`` cut to a canvas of ``size``; an empty rectangle when it lies outside."""
    x, y, w, h = rect
    x1, y1 = min(x + w, size[0]), min(y + h, size[1])
    x, y = max(x, 0), max(y, 0)
    return x, y, max(0, x1 - x), max(0, y1 - y)


def union(a: Rect, b: Rect) -> Rect:
    x, y = min(a[0], b[0]), min(a[1], b[1])
    return x, y, max(a[0] + a[2], b[0] + b[2]) - x, max(a[1] + a[3], b[1] + b[3]) - y


def dab_opacity(radius: float, hardness: float) -> np.ndarray:
    """One dab's opacity (float32, square of side 2·ceil(radius)+1): 1 inside
    ``hardness × radius``, a smooth fall to 0 at ``radius``."""
    r = max(radius, 0.5)
    side = math.ceil(r)
    ys, xs = np.mgrid[-side : side + 1, -side : side + 1].astype(np.float32)
    distance = np.sqrt(xs * xs + ys * ys)
    inner = min(max(hardness, 0.0), 1.0) * r
    if inner >= r:
        return (distance <= r).astype(np.float32)
    t = np.clip((r - distance) / (r - inner), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def dab(
    mask: np.ndarray, centre: tuple[float, float], radius: float, hardness: float, erase: bool
) -> Rect:
    """Stamp one dab on ``mask`` (H×W uint8, changed in place); the rectangle it touched."""
    opacity = dab_opacity(radius, hardness)
    side = opacity.shape[0] // 2
    cx, cy = round(centre[0]), round(centre[1])
    x, y, w, h = clip((cx - side, cy - side, opacity.shape[1], opacity.shape[0]), mask.shape[::-1])
    if not (w and h):
        return (x, y, 0, 0)
    ox, oy = x - (cx - side), y - (cy - side)
    region = mask[y : y + h, x : x + w]
    level = opacity[oy : oy + h, ox : ox + w] * REPAINT
    if erase:
        np.minimum(region, np.rint(REPAINT - level).astype(np.uint8), out=region)
    else:
        np.maximum(region, np.rint(level).astype(np.uint8), out=region)
    return (x, y, w, h)


def stroke(
    mask: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
    radius: float,
    hardness: float,
    erase: bool,
) -> Rect:
    """Dabs from ``start`` to ``end`` a quarter radius apart (a line with no gaps); the
    rectangle they touched (empty when all fell outside the mask)."""
    length = math.hypot(end[0] - start[0], end[1] - start[1])
    count = max(1, math.ceil(length / max(radius * 0.25, 0.5)))
    touched: Rect | None = None
    for i in range(count + 1):
        t = i / count
        point = (start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
        rect = dab(mask, point, radius, hardness, erase)
        if rect[2] and rect[3]:
            touched = rect if touched is None else union(touched, rect)
    return touched or (0, 0, 0, 0)
