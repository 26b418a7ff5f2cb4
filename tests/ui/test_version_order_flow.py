"""The Versions panel ordered by scores in the real window, and stored scores after reopening."""

from __future__ import annotations

from studio import taste
from studio.ui.versions_panel import ORDER_LABELS
from tests.ui.conftest import generate_and_wait
from tests.ui.test_project_flow import Answers, attach_session, reopened_window
from tests.ui.test_scores_flow import _list_order, _score_selected, _three_versions

KEYS = list(ORDER_LABELS)


def _choose(window, key: str) -> None:
    window.versions.order.setCurrentIndex(KEYS.index(key))


def test_the_panel_ranks_every_version_by_each_score_and_returns_to_the_tree(qtbot, window):
    versions = _three_versions(qtbot, window)
    _score_selected(qtbot, window, versions)
    window.session.show_version(versions[0].id)
    window.branch_from_position(2)
    branch = generate_and_wait(qtbot, window)  # not scored: listed after the scored ones
    scores = window.session.scores
    panel = window.versions
    ids = [v.id for v in versions]
    assert panel.shown_order() == [ids[0], branch.id, ids[1], ids[2]]
    assert panel.item(branch.id).parent() is panel.item(ids[0])

    _choose(window, "fidelity")
    assert window.scores.state.panel_key == "fidelity"
    by_fidelity = sorted(ids, key=lambda v: -scores[v].fidelity)
    assert panel.shown_order() == [*by_fidelity, branch.id]
    assert panel.item(branch.id).parent() is None, "a ranked list is flat"
    assert (
        panel.item(by_fidelity[0])
        .text(1)
        .startswith(f"fidelity {scores[by_fidelity[0]].fidelity:.3f}")
    )
    _choose(window, "novelty")
    assert panel.shown_order() == [*sorted(ids, key=lambda v: -scores[v].novelty), branch.id]

    _choose(window, "combined")
    fidelity = [scores[v].fidelity for v in ids]
    novelty = [scores[v].novelty for v in ids]
    orders = set()
    for tick in (0, 50, 100):
        window.scores.view.explore.setValue(tick)  # the Scores dock's slider
        expected = [ids[i] for i in taste.ranking(fidelity, novelty, tick / 100)]
        assert panel.shown_order() == [*expected, branch.id]
        orders.add(tuple(expected))
    assert len(orders) > 1, "the slider should reorder these three"

    panel.select(ids[1])
    _choose(window, "created")
    assert panel.shown_order() == [ids[0], branch.id, ids[1], ids[2]]
    assert panel.item(branch.id).parent() is panel.item(ids[0])
    assert panel.selected_ids() == [ids[1]], "the selection survives reordering"


def test_scores_stored_in_the_project_order_the_panel_after_reopening(
    qtbot, window, tmp_path, tiny_model_dir
):
    projects = attach_session(window, tmp_path / "recovery", Answers())
    projects.start()
    versions = _three_versions(qtbot, window)
    _score_selected(qtbot, window, versions)
    stored = {v.id: window.session.scores[v.id].fidelity for v in versions}
    target = tmp_path / "scored.studio"
    assert projects.save_as(target)
    window.close()

    with reopened_window(qtbot, target, tiny_model_dir, tmp_path) as (reopened, _projects):
        session = reopened.session
        assert {v: session.scores[v].fidelity for v in stored} == stored
        _choose(reopened, "fidelity")
        expected = sorted(stored, key=lambda v: -stored[v])
        assert reopened.versions.shown_order() == expected
        # the Scores dock's map and sorted list show the stored scores too
        view = reopened.scores.view
        qtbot.waitUntil(lambda: set(view.plot.shown_ids()) == set(stored))
        assert view.list.count() == 3
        view.sort_key.setCurrentIndex(view.sort_key.findData("fidelity"))
        assert _list_order(view) == expected
        assert not session.score_jobs, "nothing was rescored"
        qtbot.wait(50)
        assert not session.score_jobs
