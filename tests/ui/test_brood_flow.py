"""Breeding in the real window: a brood of children, picking, the next generation, the keys."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from studio.engine import noise
from studio.engine.breeding import cross
from studio.ui.brood_view import EMPTY_RGB
from tests.ui.conftest import GENERATION_TIMEOUT_MS, generate_and_wait

EMPTY_CELL = EMPTY_RGB


def _two_versions(qtbot, window):
    first = generate_and_wait(qtbot, window)
    window.panel.seed.setText("99")
    second = generate_and_wait(qtbot, window)
    return first, second


def _wait_for_brood(qtbot, window, children):
    tree = window.session.tree

    def all_finished():
        assert all(vid in tree and tree.get(vid).finished for vid in children)

    qtbot.waitUntil(all_finished, timeout=GENERATION_TIMEOUT_MS)
    return [tree.get(vid) for vid in children]


def _breed_selected(qtbot, window, versions, size):
    panel = window.versions
    window.versions.select(versions[0].id)
    for version in versions[1:]:
        panel.item(version.id).setSelected(True)
    window.broods.state.set_size(size)
    window.broods.breed_action.trigger()
    children = window.broods.state.children
    assert len(children) == size
    return _wait_for_brood(qtbot, window, children)


def _render(sampler, recipe) -> np.ndarray:
    return sampler.decode(list(sampler.run(recipe))[-1].latent)


def test_breeding_two_versions_makes_reproducible_distinct_children(qtbot, window, tiny_sampler):
    first, second = _two_versions(qtbot, window)
    window.broods.state.set_dose(0.3)
    children = _breed_selected(qtbot, window, [first, second], size=4)

    assert window.stack.currentWidget() is window.broods.view
    expected = cross([(first.recipe, 1.0), (second.recipe, 1.0)])
    assert dict(expected) == {1234: 1.0, 99: 1.0}
    results = [window.session.tree.result(c.id) for c in children]
    for child, result in zip(children, results, strict=True):
        assert child.recipe.parents == expected and child.recipe.mutation_dose == 0.3
        assert child.recipe.lineage == () and child.recipe.prompt == first.recipe.prompt
        assert np.array_equal(_render(tiny_sampler, child.recipe), result)  # its recipe alone
        assert window.versions.item(child.id).text(1) == "× v1, v2 · gen 1"
    assert len({c.recipe.mutation_seed for c in children}) == 4
    assert len({r.tobytes() for r in results}) == 4


def test_one_parent_at_dose_zero_is_the_parent(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    (child_id,) = window.session.breed([parent.id], children=1, dose=0.0)
    (child,) = _wait_for_brood(qtbot, window, [child_id])
    recipe = child.recipe
    shape = (1, 4, 16, 16)
    start = noise.start_noise(
        recipe.seed,
        shape,
        parents=recipe.parents,
        mutation_seed=recipe.mutation_seed,
        mutation_dose=recipe.mutation_dose,
    )
    assert recipe.mutation_seed is not None
    assert np.array_equal(start.numpy(), noise.seeded_noise(parent.recipe.seed, shape).numpy())
    tree = window.session.tree
    assert np.array_equal(tree.result(child.id), tree.result(parent.id))


def test_picks_breed_the_second_generation_with_the_current_dose(qtbot, window):
    first, second = _two_versions(qtbot, window)
    gen1 = _breed_selected(qtbot, window, [first, second], size=3)
    view, state = window.broods.view, window.broods.state
    assert not view.breed_button.isEnabled()
    qtbot.mouseClick(view.cells[gen1[0].id], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(view.cells[gen1[2].id], Qt.MouseButton.LeftButton)
    assert state.picks == (gen1[0].id, gen1[2].id) and view.breed_button.isEnabled()
    view.dose.setValue(50)
    assert state.dose == 0.5 and view.dose_label.text() == "0.50"

    qtbot.mouseClick(view.breed_button, Qt.MouseButton.LeftButton)
    gen2 = _wait_for_brood(qtbot, window, state.children)
    assert len(gen2) == 3 and state.generation == 2 and state.picks == ()
    assert "Generation 2" in view.generation_label.text()
    expected = cross([(gen1[0].recipe, 1.0), (gen1[2].recipe, 1.0)])
    for child in gen2:
        assert child.recipe.parents == expected and child.recipe.mutation_dose == 0.5
        assert gen1[0].recipe.mutation_seed in dict(child.recipe.parents)
        origin = window.versions.item(child.id).text(1)
        assert origin == f"× {gen1[0].name}, {gen1[2].name} · gen 2"


def test_arrows_return_and_space_drive_the_grid(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    window.versions.select(parent.id)
    window.broods.state.set_size(8)
    window.broods.breed_action.trigger()
    view, state = window.broods.view, window.broods.state
    children = state.children
    assert state.columns == 4 and state.cursor == 0
    qtbot.keyClick(view, Qt.Key.Key_Right)
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert state.cursor == 5
    qtbot.keyClick(view, Qt.Key.Key_Return)
    qtbot.keyClick(view, Qt.Key.Key_Left)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert state.picks == (children[5], children[4])
    assert view.cells[children[5]].pick_number == 1 and view.cells[children[4]].cursor
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert view.body.currentWidget() is view.large and view.large.version_id == children[5]
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert view.large.version_id == children[4]
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert view.large.version_id == children[5]
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.body.currentWidget() is view.grid_page and state.cursor == 0
    _wait_for_brood(qtbot, window, children)


def test_cells_show_previews_as_steps_arrive(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    seen: list[tuple[int, bool]] = []
    view = window.broods.view

    def on_step(version_id: str, _index: int) -> None:
        cell = view.cells.get(version_id)
        if cell is None:
            return
        version = window.session.tree.get(version_id)
        image = cell.grab().toImage()
        centre = image.pixelColor(cell.width() // 2, (cell.height() - 18) // 2)
        seen.append((len(version.step_indices), centre.getRgb()[:3] != EMPTY_CELL))
        assert cell.caption() == f"{version.name} · {len(version.step_indices)}/6" or (
            version.finished
        )

    window.session.tree.step_appended.connect(on_step)
    window.versions.select(parent.id)
    window.broods.state.set_size(2)
    window.broods.breed_action.trigger()
    _wait_for_brood(qtbot, window, window.broods.state.children)
    assert len(seen) == 12 and all(drawn for _count, drawn in seen)
    # the two children run as one UNet batch: their steps arrive in turn
    assert [count for count, _ in seen] == [n for n in range(1, 7) for _ in range(2)]


@pytest.mark.parametrize("how", ["menu", "empty"])
def test_breeding_needs_a_version(qtbot, window, how):
    if how == "menu":
        assert window.broods.breed_action in window.menus["generate"].actions()
        assert window.broods.breed_action.shortcut().toString() == "Ctrl+Shift+B"
    else:
        assert window.broods.breed_selected() == []
        assert window.stack.currentWidget() is not window.broods.view


def test_parents_with_different_prompts_breed_on_their_mix_unless_unchecked(
    qtbot, window, tiny_sampler
):
    first = generate_and_wait(qtbot, window)
    window.panel.seed.setText("99")
    window.panel.prompt.setPlainText("a blue owl")
    second = generate_and_wait(qtbot, window)
    prompts = (first.recipe.prompt, second.recipe.prompt)
    assert prompts[0] != prompts[1]
    view, state = window.broods.view, window.broods.state
    assert view.mix_prompts.isChecked() and state.mix_prompts

    mixed = _breed_selected(qtbot, window, [first, second], size=2)
    for child in mixed:
        assert child.recipe.prompt_mix == ((prompts[0], 1.0), (prompts[1], 1.0))
        assert child.recipe.prompt == f"{prompts[0]} × {prompts[1]}"
        result = window.session.tree.result(child.id)
        assert np.array_equal(_render(tiny_sampler, child.recipe), result)  # its recipe alone

    view.mix_prompts.click()
    assert not state.mix_prompts
    kept = _breed_selected(qtbot, window, [first, second], size=2)
    for child in kept:
        assert child.recipe.prompt == prompts[0] and child.recipe.prompt_mix == ()
        assert child.recipe.parents == mixed[0].recipe.parents
