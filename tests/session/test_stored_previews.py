"""Stored step previews are the tiny decoder's images, also for the steps the live preview
skipped (latest wins): the worker decodes those once the job ends and the session puts them
in the tree and, through the project, in the file."""

from __future__ import annotations

import numpy as np
import pytest

from studio.document.project import Project
from studio.document.store import ProjectStore
from studio.engine.recipe import Recipe
from studio.protocol import (
    FrameShown,
    JobCancelled,
    JobFinished,
    ModelLoaded,
    StepMade,
    StepPreviews,
)
from studio.session import Session
from studio.workers.local import LocalWorker

pytestmark = pytest.mark.bundled
RECIPE = Recipe("a red car on a mountain road at sunset", seed=3, steps=12)
SIZE = (RECIPE.height, RECIPE.width)


@pytest.fixture(scope="module")
def tiny_decoder():
    from studio.engine.models import load_model

    model = load_model(RECIPE.model, device="cpu")
    assert model.preview_decoder is not None
    return model.preview_decoder


def _tiny_of(decoder, checkpoint: bytes) -> np.ndarray:
    from studio.engine.checkpoint import Checkpoint
    from studio.engine.preview import tiny_preview

    return tiny_preview(decoder, Checkpoint.from_bytes(checkpoint).x0_pred)


def _assert_tiny(preview: np.ndarray, expected: np.ndarray) -> None:
    """The tiny decoder's image: a batch of them may differ from a lone one by 1 here and
    there (float rounding), the 16×16 linear map scaled up by far more."""
    assert preview.shape[:2] == SIZE
    difference = np.abs(preview.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


def _generate(qtbot, tmp_path, ending=JobFinished, stop_after=None):
    """A 12-step run through a session bound to a project file; returns the session, the
    live previews' shapes and the file's path."""
    path = tmp_path / "previews.studio"
    worker = LocalWorker()
    send = worker.send
    # A screen that never catches up: the live gate skips every step but the first and last.
    worker.send = lambda request: None if isinstance(request, FrameShown) else send(request)
    session = Session(worker)
    session.project = Project.load(
        ProjectStore.create(path), session, tree=session.tree, layers=session.layers
    )
    messages: list[object] = []
    session.message_handled.connect(messages.append)
    with qtbot.waitSignal(
        session.message_handled,
        timeout=120_000,
        check_params_cb=lambda m: isinstance(m, ModelLoaded),
    ):
        session.start()
    session.generate_many([RECIPE], stop_after=stop_after)
    qtbot.waitUntil(lambda: any(isinstance(m, ending) for m in messages), timeout=120_000)
    # the better previews follow the job's ending at once
    qtbot.waitUntil(lambda: any(isinstance(m, StepPreviews) for m in messages), timeout=20_000)
    live = [m.step.preview_x0.shape[:2] for m in messages if isinstance(m, StepMade)]
    return session, live, path


def _close(session: Session) -> None:
    session.project.store.flush()
    assert session.shutdown()
    session.project.close()


def test_every_stored_step_holds_the_tiny_decoders_preview_in_the_tree_and_the_file(
    qtbot, qapp, tmp_path, tiny_decoder
):
    session, live, path = _generate(qtbot, tmp_path)
    try:
        assert live == [SIZE] + [(16, 16)] * 10 + [SIZE]  # the live gate skipped steps 1-10
        (version,) = session.tree.versions()
        assert version.step_indices == list(range(12))
        expected = {}
        for index in version.step_indices:
            step = session.tree.steps.step(version.id, index)
            expected[index] = _tiny_of(tiny_decoder, step.checkpoint)
            _assert_tiny(step.preview_x0, expected[index])
    finally:
        _close(session)
    store = ProjectStore.open(path, writing=False)
    try:
        for index, image in expected.items():
            _assert_tiny(store.step(version.id, index).preview_x0, image)
    finally:
        store.close()


def test_a_run_stopped_early_keeps_tiny_previews_of_its_steps(qtbot, qapp, tmp_path, tiny_decoder):
    session, live, _path = _generate(qtbot, tmp_path, ending=JobCancelled, stop_after=7)
    try:
        (version,) = session.tree.versions()
        assert version.partial and version.step_indices == list(range(8))
        assert live == [SIZE] + [(16, 16)] * 7
        for index in version.step_indices:
            step = session.tree.steps.step(version.id, index)
            _assert_tiny(step.preview_x0, _tiny_of(tiny_decoder, step.checkpoint))
    finally:
        _close(session)
