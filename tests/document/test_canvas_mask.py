"""The canvas mask and its undo commands, without widgets."""

from __future__ import annotations

import itertools

import numpy as np
from PySide6.QtGui import QUndoStack

from studio.document import mask_commands
from studio.document.canvas_mask import CanvasMask
from studio.document.layers import Layer, LayerStack


def masked_stack(width: int = 40, height: int = 30) -> tuple[LayerStack, CanvasMask, QUndoStack]:
    stack = LayerStack()
    mask = CanvasMask(stack)
    stack.add(Layer(np.zeros((height, width, 4), np.uint8)))
    return stack, mask, QUndoStack()


def test_a_merged_stroke_undoes_to_the_mask_before_it_over_earlier_paint():
    _stack, mask, undo = masked_stack()
    undo.push(mask_commands.rectangle_command(mask, (10, 10, 6, 6)))
    before = np.array(mask.pixels)
    gesture = 99
    points = [(2.0, 12.0), (14.0, 12.0), (30.0, 20.0), (8.0, 25.0)]
    for start, end in itertools.pairwise(points):
        undo.push(mask_commands.stroke_command(mask, start, end, 2.5, 0.5, False, gesture))
    assert undo.count() == 2, "the stroke merged into one command"
    after = np.array(mask.pixels)
    assert not np.array_equal(after, before)
    undo.undo()
    assert np.array_equal(mask.pixels, before)
    undo.redo()
    assert np.array_equal(mask.pixels, after)


def test_the_mask_follows_the_canvas_size_and_crops_for_a_layer():
    stack, mask, undo = masked_stack(20, 20)
    undo.push(mask_commands.rectangle_command(mask, (-5, -5, 10, 10)))
    assert np.array(mask.pixels)[:5, :5].min() == 255 and mask.pixels.sum() == 255 * 25
    stack.set_size(30, 25)
    assert mask.size == (30, 25) and mask.pixels.sum() == 255 * 25
    crop = mask.crop((-2, 3), (6, 4))  # partly off the canvas
    assert crop.shape == (4, 6)
    assert crop[:, :2].max() == 0 and crop[:2, 2:].min() == 255 and crop[2:, 2:].max() == 0
    assert mask_commands.rectangle_command(mask, (40, 40, 5, 5)) is None
    assert mask_commands.stroke_command(mask, (-30, -30), (-20, -20), 2, 1, False, 1) is None


def test_the_eraser_and_the_brush_never_overshoot():
    _stack, mask, undo = masked_stack()
    undo.push(mask_commands.stroke_command(mask, (20, 15), (20, 15), 6, 0.0, False, 1))
    soft = np.array(mask.pixels)
    again = mask_commands.stroke_command(mask, (20, 15), (20, 15), 6, 0.0, False, 2)
    assert again is None, "a second soft dab on the same spot adds nothing"
    undo.push(mask_commands.stroke_command(mask, (20, 15), (20, 15), 3, 1.0, True, 3))
    erased = np.array(mask.pixels)
    assert erased[15, 20] == 0 and erased[15, 25] == soft[15, 25]
