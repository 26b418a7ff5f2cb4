"""Undoable mask edits: a brush or eraser stroke, a rectangle, invert and clear.

Each command holds the rectangle it changed with the pixels before and after,
so undo costs the size of the edit, not of the canvas. A stroke pushes one
command per mouse move with the same ``gesture`` number (see
:func:`studio.document.layer_commands.new_gesture`); they merge into a single
undo step covering the union of what the stroke touched.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtGui import QUndoCommand

from studio.document.canvas_mask import REPAINT, CanvasMask, Rect, clip, stroke, union

MASK_COMMAND_ID = 0x4D41  # "MA": only commands of this id merge with each other


class MaskEditCommand(QUndoCommand):
    """Set the mask inside ``rect`` from ``before`` to ``after``; undo puts ``before`` back.

    ``gesture`` 0 never merges; commands with the same non-zero gesture merge."""

    def __init__(
        self,
        mask: CanvasMask,
        rect: Rect,
        before: np.ndarray,
        after: np.ndarray,
        text: str,
        gesture: int = 0,
    ) -> None:
        super().__init__(text)
        self._mask = mask
        self.rect = rect
        self.before, self.after = before, after
        self.gesture = gesture
        self._done_once = False

    def id(self) -> int:
        return MASK_COMMAND_ID

    def redo(self) -> None:
        if self._done_once or not np.array_equal(self._mask.patch(self.rect), self.after):
            self._mask.put(self.rect, self.after)
        self._done_once = True

    def undo(self) -> None:
        self._mask.put(self.rect, self.before)

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, MaskEditCommand) or not self.gesture:
            return False
        if other.gesture != self.gesture:
            return False
        merged = union(self.rect, other.rect)
        # What the mask holds now is the merged "after"; the earliest "before" of each
        # pixel is this command's inside its rectangle and the newer one's elsewhere.
        before = self._mask.patch(merged)
        _paste(before, merged, other.rect, other.before)
        _paste(before, merged, self.rect, self.before)
        self.rect, self.before, self.after = merged, before, self._mask.patch(merged)
        return True


def _paste(target: np.ndarray, target_rect: Rect, rect: Rect, pixels: np.ndarray) -> None:
    x, y = rect[0] - target_rect[0], rect[1] - target_rect[1]
    target[y : y + pixels.shape[0], x : x + pixels.shape[1]] = pixels


def _edit(mask: CanvasMask, rect: Rect, after: np.ndarray, text: str, gesture: int = 0):
    return MaskEditCommand(mask, rect, mask.patch(rect), after, text, gesture)


def stroke_command(
    mask: CanvasMask,
    start: tuple[float, float],
    end: tuple[float, float],
    radius: float,
    hardness: float,
    erase: bool,
    gesture: int,
) -> MaskEditCommand | None:
    """One segment of a brush (or eraser) stroke; None when it changes nothing.

    Only the segment's bounding box is copied and painted, never the whole canvas."""
    side = math.ceil(max(radius, 0.5)) + 1
    left, top = math.floor(min(start[0], end[0])) - side, math.floor(min(start[1], end[1])) - side
    right = math.floor(max(start[0], end[0])) + side + 1
    bottom = math.floor(max(start[1], end[1])) + side + 1
    box = clip((left, top, right - left, bottom - top), mask.size)
    if not (box[2] and box[3]):
        return None
    work = mask.patch(box)
    shift = (float(box[0]), float(box[1]))
    local = stroke(
        work,
        (start[0] - shift[0], start[1] - shift[1]),
        (end[0] - shift[0], end[1] - shift[1]),
        radius,
        hardness,
        erase,
    )
    if not (local[2] and local[3]):
        return None
    x, y, w, h = local
    after = work[y : y + h, x : x + w].copy()
    rect = (box[0] + x, box[1] + y, w, h)
    if np.array_equal(after, mask.patch(rect)):
        return None
    return _edit(mask, rect, after, "Erase mask" if erase else "Paint mask", gesture)


def rectangle_command(mask: CanvasMask, rect: Rect, erase: bool = False) -> MaskEditCommand | None:
    """Fill (or erase) a rectangle of the mask; None when it lies outside the canvas."""
    rect = clip(rect, mask.size)
    if not (rect[2] and rect[3]):
        return None
    after = np.full((rect[3], rect[2]), 0 if erase else REPAINT, np.uint8)
    return _edit(mask, rect, after, "Erase mask rectangle" if erase else "Mask rectangle")


def invert_command(mask: CanvasMask) -> MaskEditCommand | None:
    width, height = mask.size
    if not (width and height):
        return None
    rect = (0, 0, width, height)
    return _edit(mask, rect, REPAINT - mask.patch(rect), "Invert mask")


def clear_command(mask: CanvasMask) -> MaskEditCommand | None:
    """Unpaint the whole mask; None when there is nothing painted."""
    if mask.is_empty():
        return None
    width, height = mask.size
    return _edit(mask, (0, 0, width, height), np.zeros((height, width), np.uint8), "Clear mask")
