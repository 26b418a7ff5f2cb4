"""Scoring in the real window: the Scores dock's map, sorting, the explore slider, clicking a point."""

from __future__ import annotations

from PySide6.QtCore import Qt

from studio import taste
from studio.scores import SORT_KEYS
from studio.ui.brood_view import BroodCell
from studio.ui.scores_view import EXPLORE_TICKS
from tests.ui.conftest import GENERATION_TIMEOUT_MS, generate_and_wait

SEEDS = ("1234", "99", "7")


def _three_versions(qtbot, window):
    versions = []
    for seed in SEEDS:
        window.panel.seed.setText(seed)
        versions.append(generate_and_wait(qtbot, window))
    return versions


def _score_selected(qtbot, window, versions):
    panel = window.versions
    panel.select(versions[0].id)
    for version in versions[1:]:
        panel.item(version.id).setSelected(True)
    with qtbot.waitSignal(window.session.scores_changed, timeout=GENERATION_TIMEOUT_MS):
        window.scores.score_action.trigger()
    return window.scores.view


def _list_order(view):
    return [view.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(view.list.count())]


def test_scoring_three_versions_puts_one_point_each_on_the_map(qtbot, window):
    versions = _three_versions(qtbot, window)
    view = _score_selected(qtbot, window, versions)

    ids = {v.id for v in versions}
    assert set(window.session.scores) == ids
    positions = view.plot.point_positions()
    assert set(positions) == ids
    assert len({(p.x(), p.y()) for p in positions.values()}) == 3
    assert view.list.count() == 3
    assert not view.progress.isVisible()
    scores = window.session.scores
    front = view.plot.front_ids()
    fidelity = [scores[v].fidelity for v in view.plot.shown_ids()]
    novelty = [scores[v].novelty for v in view.plot.shown_ids()]
    assert front == [view.plot.shown_ids()[i] for i in taste.pareto_front(fidelity, novelty)]
    setting = scores[versions[0].id].setting
    assert (setting.timesteps, setting.noises) == (8, 2)


def test_sorting_and_the_slider_order_the_list_as_the_scores_say(qtbot, window):
    versions = _three_versions(qtbot, window)
    view = _score_selected(qtbot, window, versions)
    scores = window.session.scores

    view.sort_key.setCurrentIndex(SORT_KEYS.index("fidelity"))
    by_fidelity = _list_order(view)
    assert by_fidelity == sorted(scores, key=lambda v: -scores[v].fidelity)
    assert len({scores[v].fidelity for v in by_fidelity}) == 3
    view.sort_key.setCurrentIndex(SORT_KEYS.index("novelty"))
    assert _list_order(view) == sorted(scores, key=lambda v: -scores[v].novelty)

    view.sort_key.setCurrentIndex(SORT_KEYS.index("combined"))
    shown = view.plot.shown_ids()
    fidelity = [scores[v].fidelity for v in shown]
    novelty = [scores[v].novelty for v in shown]
    orders = set()
    for tick in range(0, EXPLORE_TICKS + 1, 10):
        view.explore.setValue(tick)
        assert window.scores.state.explore == tick / EXPLORE_TICKS
        expected = [shown[i] for i in taste.ranking(fidelity, novelty, tick / EXPLORE_TICKS)]
        assert _list_order(view) == expected
        orders.add(tuple(expected))
    assert len(orders) > 1, "the slider should change the order of these three"


def test_clicking_a_point_selects_its_version(qtbot, window):
    versions = _three_versions(qtbot, window)
    view = _score_selected(qtbot, window, versions)
    assert window.session.view.version_id == versions[-1].id

    target = versions[0].id
    centre = view.plot.point_positions()[target].toPoint()
    assert view.plot.version_at(view.plot.point_positions()[target]) == target
    qtbot.mouseClick(view.plot, Qt.MouseButton.LeftButton, pos=centre)
    assert window.session.view.version_id == target
    assert window.versions.selected_ids() == [target]


def test_a_scored_brood_is_ordered_by_the_combined_score(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    window.broods.state.set_size(3)
    children = window.broods.breed([parent.id])
    tree = window.session.tree
    qtbot.waitUntil(
        lambda: all(vid in tree and tree.get(vid).finished for vid in children),
        timeout=GENERATION_TIMEOUT_MS,
    )
    assert window.scores.targets() == children
    with qtbot.waitSignal(window.session.scores_changed, timeout=GENERATION_TIMEOUT_MS):
        window.scores.view.score_button.click()
    assert set(window.scores.view.plot.point_positions()) == set(children)

    window.scores.state.set_explore(1.0)
    window.scores.view.order_brood_button.click()
    scores = window.session.scores
    novelty = [scores[v].novelty for v in children]
    fidelity = [scores[v].fidelity for v in children]
    expected = [children[i] for i in taste.ranking(fidelity, novelty, 1.0)]
    assert list(window.broods.state.children) == expected
    grid = window.broods.view.grid
    placed = [grid.itemAt(i).widget().version_id for i in range(grid.count())]
    assert placed == expected
    current = set(window.broods.view.cells.values())
    stale = [c for c in window.broods.view.grid_page.findChildren(BroodCell) if c not in current]
    # cells the reorder replaced may already be gone; any still there must not paint on
    assert all(c.isHidden() for c in stale), "replaced cells must not paint on"

    def only_the_new_cells_show():
        cells = window.broods.view.grid_page.findChildren(BroodCell)
        assert sorted(c.version_id for c in cells if c.isVisible()) == sorted(children)

    qtbot.waitUntil(only_the_new_cells_show)


def test_the_cost_setting_scores_at_its_cost_is_stored_and_marks_other_costs(
    qtbot, window, tmp_path
):
    from PySide6.QtCore import QSettings

    from studio.scores import SCORE_COSTS
    from studio.ui.score_actions import COST_KEY

    view = window.scores.view
    assert (
        view.cost.currentData() == "standard" and "32 UNet evaluations" in view.cost.currentText()
    )
    versions = _three_versions(qtbot, window)
    view.cost.setCurrentIndex(list(SCORE_COSTS).index("fast"))
    assert view.cost.currentText() == "Fast 4×1 · 8 UNet evaluations / image"
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert settings.value(COST_KEY) == "fast"
    _score_selected(qtbot, window, versions[:2])  # two at 4×1
    scores = window.session.scores
    assert {
        (scores[v.id].setting.timesteps, scores[v.id].setting.noises) for v in versions[:2]
    } == {(4, 1)}
    assert view.cost_note.isHidden()
    assert not any("scored at" in view.list.item(i).text() for i in range(view.list.count()))

    view.cost.setCurrentIndex(list(SCORE_COSTS).index("standard"))
    assert not view.cost_note.isHidden() and "2 at 4×1" in view.cost_note.text()
    assert all("scored at 4×1" in view.list.item(i).text() for i in range(view.list.count()))

    window.versions.select(versions[2].id)
    with qtbot.waitSignal(window.session.scores_changed, timeout=GENERATION_TIMEOUT_MS):
        window.scores.score_action.trigger()  # the third at 8×2
    window.scores.state.set_versions([v.id for v in versions])
    rows = [view.list.item(i).text() for i in range(view.list.count())]
    assert rows[0].startswith("1. ") and "scored at" not in rows[0], "the chosen cost leads"
    assert [r.split(".")[0] for r in rows] == ["1", "1", "2"], "each cost ranked on its own"
    assert all("scored at 4×1" in r for r in rows[1:])
    assert _list_order(view)[0] == versions[2].id
    assert view.plot.front_ids() == [versions[2].id], "no front across costs"


def test_the_cost_setting_comes_back_from_qsettings(qtbot, tiny_model_dir, tmp_path):
    from PySide6.QtCore import QSettings

    from studio.ui.score_actions import COST_KEY
    from tests.ui.conftest import open_window

    path = tmp_path / "settings.ini"
    QSettings(str(path), QSettings.Format.IniFormat).setValue(COST_KEY, "careful")
    win = open_window(qtbot, tiny_model_dir, path)
    try:
        assert win.scores.state.cost == (16, 4)
        assert win.scores.view.cost.currentText().startswith("Careful 16×4 · 128 UNet")
    finally:
        win.close()
