"""The layer canvas shows a reduced preview while an edit moves and the exact composite once it stops."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QUndoStack

from studio.document import compositing, layer_commands
from studio.document.compositing import BlendMode, Compositor
from studio.document.layers import Layer, LayerStack
from studio.ui.layer_canvas import LayerCanvas
from tests.compositing_work import CompositingWork


@pytest.fixture
def canvas(qtbot, monkeypatch):
    return _canvas(qtbot, monkeypatch, selected=0)


def _canvas(qtbot, monkeypatch, selected: int) -> LayerCanvas:
    """Seven 64x64 layers, one per blend mode, with layer ``selected`` selected."""
    monkeypatch.setattr(compositing, "PREVIEW_PIXELS", 16 * 16)  # a 64x64 canvas previews at 1/4
    rng = np.random.default_rng(5)
    stack = LayerStack(64, 64)
    for i, mode in enumerate(BlendMode):
        pixels = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
        stack.add(Layer(pixels, name=f"l{i}", blend=mode, opacity=0.8))
    undo = QUndoStack()
    view = LayerCanvas(stack, undo, lambda: stack[selected].id)
    qtbot.addWidget(view)
    view.resize(200, 200)
    view.show()
    view.undo_for_test = undo  # keep the undo stack alive with the view
    return view


def _shown(view: LayerCanvas) -> np.ndarray:
    image = view.composite_image()
    assert image is not None
    bits = image.constBits()
    return np.frombuffer(bits, np.uint8).reshape(image.height(), image.width(), 4).copy()


def _exact(stack: LayerStack) -> np.ndarray:
    return Compositor().composite_u8(stack.layers, stack.size)


def test_a_slider_drag_previews_and_settles_exact(qtbot, canvas) -> None:
    stack = canvas._stack
    layer_id = stack[0].id
    gesture = layer_commands.new_gesture()
    for opacity in (0.3, 0.4, 0.5):
        canvas.undo_for_test.push(layer_commands.set_opacity(stack, layer_id, opacity, gesture))
        assert _shown(canvas).shape == (16, 16, 4), "while moving, the reduced preview"
        assert canvas.item.is_preview
    qtbot.waitUntil(lambda: _shown(canvas).shape == (64, 64, 4), timeout=2000)
    assert not canvas.item.is_preview
    assert np.array_equal(_shown(canvas), _exact(stack)), "once stopped, exact bit for bit"


def test_a_mouse_drag_settles_exact_on_release(canvas) -> None:
    stack = canvas._stack
    assert canvas.begin_move(QPointF(10, 10))
    canvas.move_to(QPointF(14, 12))
    canvas.move_to(QPointF(20, 15))
    assert _shown(canvas).shape == (16, 16, 4)
    canvas.end_move()
    assert stack[0].offset == (10, 5)
    assert np.array_equal(_shown(canvas), _exact(stack))


def test_a_small_change_is_drawn_exact_at_once(canvas) -> None:
    stack = canvas._stack
    canvas.item.settle()  # building the stack was one large edit
    assert _shown(canvas).shape == (64, 64, 4)
    stack.add(Layer(np.full((4, 4, 4), 255, np.uint8), name="dot", offset=(3, 3)))
    assert np.array_equal(_shown(canvas), _exact(stack))
    assert not canvas.item.is_preview


def test_a_press_prepares_the_drag_so_its_first_move_costs_what_the_next_do(
    qtbot, monkeypatch
) -> None:
    """The press builds the preview's caches off the UI thread; on it, every move of the drag,
    the first included, blends only the moved layer and the three above it."""
    work = CompositingWork(monkeypatch)
    view = _canvas(qtbot, monkeypatch, selected=3)
    stack = view._stack
    view.item.settle()
    assert _shown(view).shape == (64, 64, 4)
    work.reset()
    assert view.begin_move(QPointF(10, 10))
    assert work.on_ui() == (0, 0)
    for point in (QPointF(14, 12), QPointF(21, 15), QPointF(30, 19)):
        view.move_to(point)
        assert _shown(view).shape == (16, 16, 4)
        blends, premultiplied = work.on_ui()
        assert blends == 4 and premultiplied <= 1, f"move to {point}: {work.on_ui()}"
        work.reset()
    view.end_move()
    assert stack[3].offset == (20, 9)
    assert np.array_equal(_shown(view), _exact(stack))
