"""Generate from this layer, in the real window: a version like any other, undoable."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QInputDialog

from studio.engine.recipe import image_hash
from tests.ui.conftest import generate_and_wait


def test_generate_from_this_layer_makes_a_scrubbable_version(qtbot, window, monkeypatch):
    source = generate_and_wait(qtbot, window)
    window.workspace.add_action.trigger()
    (layer,) = window.workspace.layers.layers
    action = window.canvas_generation.from_layer_action
    assert action in window.workspace.panel.list.actions()  # the layers' context menu
    assert action in window.menus["generate"].actions()
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *args: (0.5, True))

    with qtbot.waitSignal(window.session.tree.version_finished, timeout=120_000) as done:
        action.trigger()
    version = window.session.tree.get(done.args[0])
    assert version.id != source.id
    recipe = version.recipe
    assert recipe.init_image == image_hash(layer.pixels[..., :3]) and recipe.strength == 0.5
    assert recipe.prompt == source.recipe.prompt  # the prompt panel's recipe
    assert version.step_indices == [3, 4, 5]  # strength 0.5 of 6 steps: the last three
    assert window.session.tree.result(version.id) is not None
    assert window.session.init_images.get(recipe.init_image) is not None

    window.session.show_version(version.id)
    window.timeline.set_position(window.session.forward_count())  # after the forward frames
    assert "step 4 / 6" in window.session.frame().caption

    count = window.session.undo_stack.count()
    window.actions_.undo.trigger()
    assert version.id not in window.session.tree
    assert window.session.undo_stack.count() == count


def test_a_layer_of_an_odd_size_gets_one_sentence(qtbot, window, monkeypatch):
    from studio.document.layers import Layer

    layer = Layer(np.zeros((31, 31, 4), np.uint8))
    window.session.layers.add(layer)
    window.workspace.panel.select_layer(layer.id)
    shown: list[str] = []
    monkeypatch.setattr(window.canvas_generation, "show_error", shown.append)
    assert window.canvas_generation.generate_from_layer(0.5) is None
    assert shown and "multiple of" in shown[0]
