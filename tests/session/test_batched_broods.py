"""A brood from the session runs in UNet batches of the session's batch size: each child's
recipe records its batch and reproduces it alone; a client that cannot batch gets batch 1."""

from __future__ import annotations

import numpy as np

from studio.engine.recipe import Recipe
from studio.protocol import Generate, GenerateBatch, JobFinished, ModelLoaded
from studio.session import Session
from studio.workers.local import LocalWorker


class RecordingWorker(LocalWorker):
    def __init__(self, batches: bool = True) -> None:
        from studio.engine.models import load_model

        super().__init__(load_model=lambda ref: load_model(ref, device="cpu"))
        self.batches = batches
        self.sent: list[object] = []

    def send(self, request) -> None:
        self.sent.append(request)
        super().send(request)


def _session(qtbot, model: str, batches: bool = True) -> Session:
    made = Session(RecordingWorker(batches), model)
    with qtbot.waitSignal(
        made.message_handled, timeout=60_000, check_params_cb=lambda m: isinstance(m, ModelLoaded)
    ):
        made.start()
    return made


def _finish_root(qtbot, session: Session, model: str) -> str:
    recipe = Recipe("a red fox", seed=3, steps=3, width=16, height=16, model=model)
    with qtbot.waitSignal(
        session.message_handled,
        timeout=60_000,
        check_params_cb=lambda m: isinstance(m, JobFinished),
    ) as done:
        session.generate(recipe)
    return done.args[0].version_id


def _wait_for_all(qtbot, session: Session, version_ids: list[str]) -> None:
    qtbot.waitUntil(
        lambda: all(v in session.tree and session.tree.result(v) is not None for v in version_ids),
        timeout=120_000,
    )


def test_a_brood_runs_in_batches_and_each_child_reproduces_alone(
    qapp, qtbot, tiny_model_dir, tiny_sampler
):
    session = _session(qtbot, str(tiny_model_dir))
    try:
        parent = _finish_root(qtbot, session, str(tiny_model_dir))
        session.batch_size = 2
        children = session.breed([parent], children=3, dose=0.3, brood_seed=5)
        _wait_for_all(qtbot, session, children)
        jobs = [r for r in session.client.sent if isinstance(r, (Generate, GenerateBatch))]
        assert [type(r) for r in jobs[1:]] == [GenerateBatch, Generate]
        assert [j.version_id for j in jobs[1].jobs] == children[:2]
        assert jobs[2].version_id == children[2], "the odd child runs alone, padded to its batch"
        for child in children:
            recipe = session.tree.get(child).recipe
            assert recipe.batch == 2
            _steps, alone = tiny_sampler.render(recipe)
            assert np.array_equal(alone, session.tree.result(child)), "bit for bit"
    finally:
        assert session.shutdown()


def test_a_client_that_cannot_batch_gets_batch_one(qapp, qtbot, tiny_model_dir):
    session = _session(qtbot, str(tiny_model_dir), batches=False)
    try:
        parent = _finish_root(qtbot, session, str(tiny_model_dir))
        children = session.breed([parent], children=2, dose=0.3, brood_seed=5)
        _wait_for_all(qtbot, session, children)
        assert not [r for r in session.client.sent if isinstance(r, GenerateBatch)]
        assert all(session.tree.get(c).recipe.batch == 1 for c in children)
    finally:
        assert session.shutdown()
