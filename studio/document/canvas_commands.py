"""Undoable edits of the canvas itself: extending it on any side (for outpainting).

Extending by (left, top, right, bottom) pixels grows the canvas, moves every layer by
(left, top) so the picture stays where it was on the grown canvas, and moves the
painted mask with it. The new area is transparent: nothing covers it until a layer
does, which is what "Outpaint" fills (``Session.outpaint``). Undo puts the size,
the layers' offsets and the mask back exactly.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoCommand

from studio.document.canvas_mask import CanvasMask
from studio.document.layers import LayerError, LayerStack

Padding = tuple[int, int, int, int]
SIDE_NAMES = ("left", "top", "right", "bottom")


class ExtendCanvasCommand(QUndoCommand):
    """Grow the canvas by ``padding`` (left, top, right, bottom), keeping the picture."""

    def __init__(self, layers: LayerStack, mask: CanvasMask, padding: Padding) -> None:
        left, top, right, bottom = (int(side) for side in padding)
        if min(left, top, right, bottom) < 0:
            raise LayerError("The canvas can only be extended by whole numbers of pixels ≥ 0.")
        sides = (left, top, right, bottom)
        grown = [f"+{n} px {name}" for n, name in zip(sides, SIDE_NAMES, strict=True) if n]
        super().__init__("Extend canvas: " + ", ".join(grown) if grown else "Extend canvas")
        self._layers, self._mask = layers, mask
        self.padding = (left, top, right, bottom)
        self.before_size = layers.size
        width, height = self.before_size
        self.after_size = (width + left + right, height + top + bottom)
        self._mask_before: np.ndarray | None = None

    def redo(self) -> None:
        left, top, _, _ = self.padding
        self._mask_before = self._mask.pixels.copy()
        self._layers.set_size(*self.after_size)
        self._shift(left, top)
        grown = np.zeros((self.after_size[1], self.after_size[0]), np.uint8)
        height, width = self._mask_before.shape
        grown[top : top + height, left : left + width] = self._mask_before
        self._mask.replace(grown)

    def undo(self) -> None:
        left, top, _, _ = self.padding
        self._shift(-left, -top)
        self._layers.set_size(*self.before_size)
        self._mask.replace(self._mask_before)

    def _shift(self, dx: int, dy: int) -> None:
        for layer in self._layers.layers:
            x, y = layer.offset
            self._layers.update(layer.id, offset=(x + dx, y + dy))
