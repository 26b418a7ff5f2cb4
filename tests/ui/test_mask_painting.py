"""Mask painting on the canvas, in the real window: strokes, rectangle, invert, clear, undo,
Inpaint and the mask kept in the project file."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QInputDialog

from studio.document.layers import Layer
from studio.engine.recipe import image_hash
from studio.ui.mask_tool import MaskToolKind
from tests.ui.test_project_flow import Answers, attach_session, reopened_window


def gradient_layer(width: int = 32, height: int = 32) -> Layer:
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[..., 0] = xs * 255 // (width - 1)
    pixels[..., 1] = ys * 255 // (height - 1)
    pixels[..., 2] = 128
    pixels[..., 3] = 255
    return Layer(pixels, name="gradient")


def put_layer(window, layer: Layer | None = None) -> Layer:
    layer = layer or gradient_layer()
    window.workspace.add_layer(layer)
    window.workspace.show_canvas(True)
    window.workspace.view.resize(400, 400)
    window.workspace.view.fit()
    return layer


def viewport_point(window, x: float, y: float) -> QPoint:
    return window.workspace.view.mapFromScene(x, y)


def drag(qtbot, window, points, button=Qt.MouseButton.LeftButton) -> None:
    viewport = window.workspace.view.viewport()
    first, *rest = [viewport_point(window, x, y) for x, y in points]
    qtbot.mousePress(viewport, button, pos=first)
    for point in rest:
        qtbot.mouseMove(viewport, point)
    qtbot.mouseRelease(viewport, button, pos=rest[-1] if rest else first)


def test_a_brush_stroke_paints_the_mask_in_one_undo_step(qtbot, window):
    put_layer(window)
    mask, tool, stack = window.session.mask, window.mask_tool, window.session.undo_stack
    assert mask.size == (32, 32) and mask.is_empty()
    assert not any(a.isChecked() for a in tool.actions()[:4])  # off: no tool looks pressed
    window.mask_tool.brush_action.trigger()  # B
    assert tool.active and tool.overlay.isVisible() and tool.hint.isVisible()
    assert tool.brush_action.isChecked() and tool.mode_action.isChecked()
    tool.eraser_action.trigger()
    assert tool.eraser_action.isChecked() and not tool.brush_action.isChecked()
    tool.eraser_action.trigger()  # E again keeps the eraser
    assert tool.eraser_action.isChecked()
    tool.mode_action.trigger()  # Q: off, and no tool looks pressed
    assert not tool.active and not any(a.isChecked() for a in tool.actions()[:4])
    tool.brush_action.trigger()
    assert window.workspace.view.tool is tool
    tool.radius, tool.hardness = 3.0, 1.0
    before = stack.count()

    drag(qtbot, window, [(6, 16), (12, 16), (18, 16), (24, 16)])
    painted = np.array(mask.pixels)
    assert painted[16, 6:25].min() == 255, "the line under the stroke is painted"
    assert painted[2, :].max() == 0 and painted[30, :].max() == 0, "far from it is not"
    assert stack.count() == before + 1, "a whole stroke is one undo step"
    assert stack.text(stack.count() - 1) == "Paint mask"

    window.actions_.undo.trigger()
    assert mask.is_empty()
    window.actions_.redo.trigger()
    assert np.array_equal(mask.pixels, painted)

    tool.choose(MaskToolKind.ERASER)
    drag(qtbot, window, [(6, 16), (24, 16)])
    assert np.array(mask.pixels)[16, 10:21].max() == 0, "the eraser unpaints"
    window.actions_.undo.trigger()
    assert np.array_equal(mask.pixels, painted)


def test_a_soft_brush_falls_off_towards_its_edge(qtbot, window):
    put_layer(window)
    tool = window.mask_tool
    tool.brush_action.trigger()
    tool.radius, tool.hardness = 8.0, 0.0
    drag(qtbot, window, [(16, 16)])
    row = np.array(window.session.mask.pixels)[16]
    assert row[16] == 255 and 0 < row[21] < 255 and row[26] == 0


def test_rectangle_invert_and_clear_are_undoable(qtbot, window):
    put_layer(window)
    mask, tool, undo = window.session.mask, window.mask_tool, window.actions_.undo
    tool.rectangle_action.trigger()  # M
    drag(qtbot, window, [(4, 8), (12, 14), (20, 20)])
    filled = np.array(mask.pixels)
    assert filled[8:20, 4:20].min() == 255
    assert filled.sum() == 255 * 16 * 12, "exactly the dragged rectangle"

    tool.invert_action.trigger()
    assert np.array_equal(mask.pixels, 255 - filled)
    undo.trigger()
    assert np.array_equal(mask.pixels, filled)

    tool.clear_action.trigger()
    assert mask.is_empty()
    undo.trigger()
    assert np.array_equal(mask.pixels, filled)
    undo.trigger()
    assert mask.is_empty()

    drag(qtbot, window, [(0, 0), (32, 32)])
    drag(qtbot, window, [(8, 8), (16, 16)], Qt.MouseButton.RightButton)
    assert np.array(mask.pixels)[8:16, 8:16].max() == 0, "the right button unpaints"


def test_keys_pick_tools_and_sizes_and_q_leaves_mask_mode(qtbot, window):
    put_layer(window)
    tool = window.mask_tool
    window.workspace.view.setFocus()
    qtbot.keyClick(window.workspace.view, Qt.Key.Key_B)
    assert tool.active and tool.kind is MaskToolKind.BRUSH
    radius = tool.radius
    qtbot.keyClick(window.workspace.view, Qt.Key.Key_BracketRight)
    assert tool.radius > radius
    qtbot.keyClick(window.workspace.view, Qt.Key.Key_E)
    assert tool.kind is MaskToolKind.ERASER
    qtbot.keyClick(window.workspace.view, Qt.Key.Key_M)
    assert tool.kind is MaskToolKind.RECTANGLE
    qtbot.keyClick(window.workspace.view, Qt.Key.Key_Q)
    assert not tool.active and window.workspace.view.tool is None
    assert not tool.overlay.isVisible()
    window.session.show_version(None)  # leaving the canvas leaves mask mode too
    tool.set_active(True)
    window.session.view.set_canvas_shown(False)
    assert not tool.active


def test_inpaint_keeps_the_layer_outside_the_mask(qtbot, window, monkeypatch):
    layer = put_layer(window)
    tool = window.mask_tool
    shown: list[str] = []
    monkeypatch.setattr(window.canvas_generation, "show_error", shown.append)
    assert window.canvas_generation.inpaint(0.8) is None
    assert shown and "Paint a mask" in shown[0]

    tool.rectangle_action.trigger()
    drag(qtbot, window, [(8, 8), (24, 24)])
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *args: (0.8, True))
    with qtbot.waitSignal(window.session.tree.version_finished, timeout=120_000) as done:
        window.canvas_generation.inpaint_action.trigger()
    version = window.session.tree.get(done.args[0])
    mask = np.array(window.session.mask.pixels)
    assert version.recipe.mask == image_hash(mask) and version.recipe.strength == 0.8
    result = window.session.tree.result(version.id)
    outside = mask == 0
    assert np.array_equal(result[outside], layer.pixels[..., :3][outside])
    assert not np.array_equal(result[~outside], layer.pixels[..., :3][~outside])


def test_the_mask_survives_saving_and_reopening(qtbot, window, tmp_path, tiny_model_dir):
    projects = attach_session(window, tmp_path / "recovery", Answers())
    projects.start()
    put_layer(window)
    window.mask_tool.brush_action.trigger()
    window.mask_tool.radius = 4.0
    drag(qtbot, window, [(5, 5), (27, 27)])
    painted = np.array(window.session.mask.pixels)
    assert painted.any()
    target = tmp_path / "masked.studio"
    assert projects.save_as(target)
    window.mask_tool.invert_action.trigger()  # a change after Save As, written on close
    window.close()

    with reopened_window(qtbot, target, tiny_model_dir, tmp_path) as (reopened, other):
        assert np.array_equal(reopened.session.mask.pixels, 255 - painted)
        kinds = other.project.store.submit(
            lambda conn: conn.execute("SELECT count(*) FROM images WHERE kind = 'mask'").fetchone()
        ).result()
        assert kinds == (1,), "earlier states of the painted mask are not kept"
