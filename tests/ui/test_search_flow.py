"""Early-pruned search from the real window: settings, progress, survivors, cancel."""

from __future__ import annotations

import numpy as np

from studio import taste
from studio.ui.search_actions import SearchSettings
from tests.ui.conftest import GENERATION_TIMEOUT_MS

SMALL = SearchSettings(candidates=4, percent=25, keep=2)


def _render(sampler, recipe) -> np.ndarray:
    return sampler.decode(list(sampler.run(recipe))[-1].latent)


def test_a_pruned_search_keeps_the_best_ranked_and_they_equal_full_runs(
    qtbot, window, tiny_sampler
):
    window.panel.steps.setValue(8)
    window.scores.state.set_explore(0.3)
    searches = window.searches
    searches.ask_settings = lambda: SMALL
    progress = []
    window.searches.action.trigger()  # the menu entry (Ctrl+Shift+K)
    search = searches.search
    search.progress.connect(lambda done, planned: progress.append((done, planned)))
    assert searches.progress_box.isVisibleTo(window)
    candidates = list(window.broods.state.children)
    assert len(candidates) == 4 and window.stack.currentWidget() is window.broods.view
    header = window.broods.view.generation_label.text()
    assert header.startswith("Pruned search: 4 candidates → 2 kept") and "Generation" not in header
    with qtbot.waitSignal(search.finished, timeout=4 * GENERATION_TIMEOUT_MS) as done:
        pass
    report = done.args[0]
    tree, scores = window.session.tree, window.session.scores

    assert report.prune_step == 2 and len(report.survivors) == 2
    assert list(window.broods.state.children) == report.survivors
    assert window.broods.view.generation_label.text().startswith("Pruned search: 2 kept")
    assert sorted(window.versions.selected_ids()) == sorted(report.survivors)
    assert not searches.progress_box.isVisibleTo(window)
    assert progress and progress[-1][0] == report.steps_run <= progress[-1][1]
    assert report.steps_run < report.full_cost

    ranked = [v for v in candidates if v in scores]
    order = taste.ranking(
        [scores[v].fidelity for v in ranked], [scores[v].novelty for v in ranked], 0.3
    )
    best = {ranked[i] for i in order[:2]}
    assert {tree.get(s).parent_id for s in report.survivors} == best
    for survivor in report.survivors:
        candidate = tree.get(tree.get(survivor).parent_id)
        assert np.array_equal(tree.result(survivor), _render(tiny_sampler, candidate.recipe))
    for pruned in report.pruned:
        version = tree.get(pruned)
        assert version.partial and version.step_indices[-1] < 7

    pruned = tree.get(report.pruned[0])
    with qtbot.waitSignal(tree.version_finished, timeout=GENERATION_TIMEOUT_MS) as resumed:
        window.session.resume(pruned.id)
    assert np.array_equal(tree.result(resumed.args[0]), _render(tiny_sampler, pruned.recipe))


def test_cancelling_a_search_stops_its_jobs_and_keeps_what_ran(qtbot, window):
    window.panel.steps.setValue(8)
    searches = window.searches
    searches.ask_settings = lambda: SearchSettings(candidates=6, percent=50, keep=2)
    failures = []
    search = searches.ask_and_start()
    search.failed.connect(failures.append)
    qtbot.waitUntil(lambda: search.report.steps_run >= 2, timeout=GENERATION_TIMEOUT_MS)
    searches.cancel_button.click()
    assert failures and "cancelled" in failures[0]
    assert not search.running and not searches.progress_box.isVisibleTo(window)
    qtbot.waitUntil(lambda: not window.session.jobs, timeout=GENERATION_TIMEOUT_MS)
    tree = window.session.tree
    kept = tree.versions()
    assert kept and all(v.partial and v.finished for v in kept)
    assert all(v.parent_id is None for v in kept), "no survivor was continued"
    assert len(kept) < 6 or any(len(v.step_indices) < 4 for v in kept)
