"""Early-pruned search through the session: survivors equal their full runs bit for bit,
pruned candidates stay partial and resumable, and the search costs less than full runs."""

from __future__ import annotations

import numpy as np
import pytest

from studio.engine.recipe import Recipe
from studio.protocol import JobFinished, ModelLoaded
from studio.search import PrunedSearch
from studio.session import Session
from studio.workers.local import LocalWorker


@pytest.fixture
def session(qapp, qtbot, tiny_model_dir):
    from studio.engine.models import load_model

    made = Session(LocalWorker(load_model=lambda ref: load_model(ref, device="cpu")))
    made.model.ref = str(tiny_model_dir)
    with qtbot.waitSignal(
        made.message_handled, timeout=60_000, check_params_cb=lambda m: isinstance(m, ModelLoaded)
    ):
        made.start()
    yield made
    assert made.shutdown()


def test_survivors_equal_their_full_runs_and_the_pruned_stay_partial(
    qtbot, session, tiny_model_dir
):
    recipe = Recipe("a red fox in the snow", seed=40, steps=8, guidance=5.0, sampler="Euler a")
    recipe = recipe.with_changes(width=32, height=32, model=str(tiny_model_dir))
    search = PrunedSearch(session, recipe, candidates=4, keep=2, fraction=0.25)
    with qtbot.waitSignal(search.finished, timeout=180_000) as done:
        search.start()
    report = done.args[0]
    tree = session.tree
    assert (report.candidates, report.kept, report.prune_step) == (4, 2, 2)
    assert len(report.survivors) == 2 and len(report.pruned) == 2
    for pruned in report.pruned:
        version = tree.get(pruned)
        assert version.partial and version.step_indices[-1] < recipe.steps - 1
    assert report.steps_run == 4 * 2 + 2 * (8 - 2) == search.planned_steps  # no cancel race
    for survivor in report.survivors:
        child = tree.get(survivor)
        with qtbot.waitSignal(
            session.message_handled,
            timeout=60_000,
            check_params_cb=lambda m: isinstance(m, JobFinished),
        ) as full:
            session.generate(child.recipe.parent)
        alone = tree.get(full.args[0].version_id)
        assert np.array_equal(tree.result(survivor), tree.result(alone.id)), "bit for bit"
