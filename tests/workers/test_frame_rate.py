"""Latest wins for the tiny-decoder preview through the worker: it is spent only when the
UI has shown the newest step (FrameShown), at most FRAME_RATE times a second."""

from __future__ import annotations

import time

import pytest

from studio.engine.recipe import Recipe
from studio.protocol import FrameShown, Generate, JobFinished, StepMade
from studio.workers.local import LocalWorker
from tests.workers.harness import Collector

pytestmark = pytest.mark.bundled
RECIPE = Recipe("a red car on a mountain road at sunset", seed=3, steps=12)


def _run(draws: bool) -> list[tuple[int, int]]:
    client = LocalWorker()
    collector = Collector(client)
    if draws:  # a UI that draws every step it gets, at once
        client.listen(
            lambda m: (collector._receive(m), isinstance(m, StepMade) and client.send(FrameShown()))
        )
    client.start()
    try:
        client.send(Generate(1, "v", RECIPE))
        deadline = time.monotonic() + 120
        while not collector.of(JobFinished):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        assert client.stop()
    return [m.step.preview_x0.shape[:2] for m in collector.of(StepMade)]


def test_without_frames_shown_only_the_first_and_last_steps_get_the_tiny_decoder():
    shapes = _run(draws=False)
    assert shapes[0] == (64, 64) and shapes[-1] == (64, 64)
    assert shapes[1:-1] == [(16, 16)] * 10


def test_a_ui_that_draws_gets_tiny_previews_at_the_screens_pace():
    shapes = _run(draws=True)
    tiny = sum(shape == (64, 64) for shape in shapes)
    assert 2 < tiny <= len(shapes)
