"""Extend canvas… and Outpaint, in the real window: the extension is one undo step, and
the outpaint's version keeps the old composite's pixels exactly in the old area."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from studio.engine import init_pixels
from studio.ui.canvas_extension import ExtendDialog
from tests.ui.conftest import generate_and_wait


def _canvas_with_a_version(qtbot, window):
    generate_and_wait(qtbot, window)
    window.workspace.add_action.trigger()
    (layer,) = window.workspace.layers.layers
    return layer


def test_extend_canvas_is_one_undo_step(qtbot, window, monkeypatch):
    layer = _canvas_with_a_version(qtbot, window)
    session, layers = window.session, window.session.layers
    size = layers.size
    painted = np.zeros((size[1], size[0]), np.uint8)
    painted[3:9, 5:12] = 255
    session.mask.replace(painted)
    extension = window.canvas_extension
    assert extension.extend_action in window.workspace.menu.actions()
    assert extension.outpaint_action in window.menus["generate"].actions()

    def accept(dialog: ExtendDialog) -> QDialog.DialogCode:
        for box, value in zip(dialog.sides, (4, 2, 6, 8), strict=True):
            box.setValue(value)
        assert dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ExtendDialog, "exec", accept)
    count = session.undo_stack.count()
    assert extension.ask_and_extend()
    assert session.undo_stack.count() == count + 1
    assert layers.size == (size[0] + 10, size[1] + 10)
    assert layers.layer(layer.id).offset == (4, 2)
    assert np.array_equal(session.mask.pixels[2 : 2 + size[1], 4 : 4 + size[0]], painted)
    assert session.mask.pixels.sum() == painted.sum()
    composite = layers.composite_rgba()
    assert (composite[:2, ..., 3] == 0).all() and (composite[:, :4, 3] == 0).all()

    window.actions_.undo.trigger()
    assert layers.size == size and layers.layer(layer.id).offset == (0, 0)
    assert np.array_equal(session.mask.pixels, painted)
    window.actions_.redo.trigger()
    assert layers.size == (size[0] + 10, size[1] + 10)


def test_a_bad_extension_gets_one_sentence(qtbot, window, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(window.canvas_extension, "show_error", shown.append)
    assert not window.canvas_extension.extend((2, 0, 0, 0))
    assert "empty" in shown[-1]
    _canvas_with_a_version(qtbot, window)
    assert not window.canvas_extension.extend((3, 0, 0, 0))  # the tiny model's factor is 2
    assert "multiple of 2" in shown[-1]
    assert window.canvas_extension.outpaint() is None
    assert "no empty area" in shown[-1]
    dialog = ExtendDialog(window.session, window)
    dialog.sides[0].setValue(5000)
    assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
    assert "at most 4096" in dialog.summary.text()


def test_outpaint_fills_the_new_area_and_keeps_the_old_exactly(qtbot, window, tiny_sampler):
    _canvas_with_a_version(qtbot, window)
    session, layers = window.session, window.session.layers
    old = layers.composite_rgba()[..., :3].copy()
    width, height = layers.size
    assert window.canvas_extension.extend((0, 4, 8, 0))
    with qtbot.waitSignal(session.tree.version_finished, timeout=120_000) as done:
        window.canvas_extension.outpaint_action.trigger()
    version = session.tree.get(done.args[0])
    recipe = version.recipe
    assert (recipe.width, recipe.height) == (width + 8, height + 4) and recipe.strength == 1.0
    result = session.tree.result(version.id)
    assert result.shape == (height + 4, width + 8, 3)
    assert np.array_equal(result[4:, :width], old)  # the old area, exactly
    filled, mask = init_pixels.outpaint_images(
        init_pixels.rgb_of(layers.composite_rgba()), layers.composite_rgba()[..., 3] > 0
    )
    assert (mask[4:, :width] == 0).all() and (mask[:4] > 0).all()
    assert not np.array_equal(result[mask > 0], filled[mask > 0])  # generated

    # It reproduces from its recipe and the pixels it names (the padded image, the mask).
    images = session.init_images.for_recipe(recipe)
    _, again = tiny_sampler.render(recipe, images=images)
    assert np.array_equal(again, result)

    # On the canvas, the outpainted layer over the old one leaves the old area as it was.
    session.show_version(version.id)
    window.timeline.set_position(session.last_position())
    window.workspace.add_action.trigger()
    composite = layers.composite_rgba()
    assert np.array_equal(composite[4:, :width, :3], old)
    assert (composite[..., 3] == 255).all()
