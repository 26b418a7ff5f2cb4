"""Crossing two versions at a step in the real window, on the bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from studio.engine.checkpoint import Checkpoint
from studio.engine.model_refs import BUNDLED_NAME, RESOURCES
from studio.engine.recipe import Recipe
from tests.ui.conftest import (
    GENERATION_TIMEOUT_MS,
    generate_and_wait,
    open_window,
    set_small_recipe,
)

BUNDLED = RESOURCES / "models" / BUNDLED_NAME


@pytest.fixture
def bundled_window(qtbot, tmp_path):
    win = open_window(qtbot, BUNDLED, tmp_path / "settings.ini")
    set_small_recipe(win, "a red fox in the snow", steps=6)
    win.panel.width_box.setValue(64)
    win.panel.height_box.setValue(64)
    yield win
    win.close()


@pytest.fixture(scope="module")
def bundled_sampler():
    from studio.engine.models import load_model
    from studio.engine.sampler import Sampler

    return Sampler(load_model(str(BUNDLED), device="cpu"))


def test_cross_at_this_step_makes_a_child_of_both_that_reproduces(
    qtbot, bundled_window, bundled_sampler
):
    window = bundled_window
    session, tree = window.session, window.session.tree
    first = generate_and_wait(qtbot, window)
    window.panel.prompt.setPlainText("a blue owl in a forest at night")
    window.panel.seed.setText("99")
    second = generate_and_wait(qtbot, window)

    session.show_version(first.id)  # the timeline shows the first parent's steps
    window.versions.select(first.id)
    window.versions.item(second.id).setSelected(True)
    assert session.view.version_id == first.id
    session.view.set_position(2)  # after step 3 of 6
    window.broods.state.set_dose(0.25)
    assert window.broods.cross_action in window.menus["generate"].actions()
    with qtbot.waitSignal(tree.version_finished, timeout=GENERATION_TIMEOUT_MS) as blocker:
        window.broods.cross_action.trigger()
    child = tree.get(blocker.args[0])

    point = child.recipe.cross
    assert point.step_index == 2 and point.dose == 0.25
    assert [r for r, _ in point.parents] == [first.recipe, second.recipe]
    assert child.bred_parent_ids == (first.id, second.id)
    assert window.versions.item(child.id).text(1).startswith("× v1, v2")
    assert child.step_indices[0] == 3  # the child's own steps start after the cross
    stack = session.undo_stack
    assert stack.text(stack.count() - 1) == f"Cross {child.name} at step 3"

    result = tree.result(child.id)
    recipe = Recipe.from_json(child.recipe.to_json())  # its recipe alone, from scratch
    assert np.array_equal(bundled_sampler.render(recipe)[1], result)
    later = Checkpoint.from_bytes(tree.step(child.id, 4).checkpoint)
    resumed = list(bundled_sampler.run(recipe, start=later))
    assert np.array_equal(bundled_sampler.decode(resumed[-1].latent), result)
    for parent in (first, second):
        assert not np.array_equal(tree.result(parent.id), result)


def test_cross_needs_two_selected_versions(qtbot, bundled_window):
    window = bundled_window
    only = generate_and_wait(qtbot, window)
    window.versions.select(only.id)
    messages = []
    window.session.status.connect(lambda text, _ms: messages.append(text))
    assert window.broods.cross_selected() is None
    assert messages and "two versions" in messages[-1]
    other = window.session.tree.get(only.id)
    assert len(window.session.tree) == 1 and other.finished
