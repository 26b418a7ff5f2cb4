"""Full decodes of many steps in one request (DecodeSteps): the worker decodes them a VAE
batch at a time, says how far it is after each batch, gives what lone decodes give, and
stops when cancelled."""

from __future__ import annotations

import time

import numpy as np
import pytest

from studio.engine.recipe import Recipe
from studio.protocol import (
    CancelDecodeSteps,
    Decode,
    Decoded,
    DecodeSteps,
    Generate,
    JobFinished,
    StepMade,
    StepsDecoded,
)
from studio.workers.local import LocalWorker
from tests.workers.harness import Collector

pytestmark = pytest.mark.bundled
RECIPE = Recipe("a red car on a mountain road at sunset", seed=5, steps=12)


@pytest.fixture(scope="module")
def run():
    """A worker that has run RECIPE, with the StepMade messages of that run."""
    client = LocalWorker()
    collector = Collector(client)
    client.start()
    client.send(Generate(1, "v", RECIPE))
    _wait(lambda: collector.of(JobFinished))
    yield client, collector, [m.step for m in collector.of(StepMade)]
    assert client.stop()


def _wait(condition, seconds: float = 120.0):
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, "the worker did not answer"
        time.sleep(0.01)
    return found


def _answers(collector: Collector, key: str) -> list[StepsDecoded]:
    return [m for m in collector.of(StepsDecoded) if m.key == key]


def test_a_batched_decode_gives_what_lone_decodes_give_and_reports_each_batch(run):
    from studio.engine.checkpoint import Checkpoint
    from studio.engine.models import load_model
    from studio.engine.preview import decode

    client, collector, steps = run
    client.send(DecodeSteps("all", tuple(step.checkpoint for step in steps)))
    answers = _wait(
        lambda: [m for m in _answers(collector, "all") if m.last] and _answers(collector, "all")
    )
    # Progress advances a batch at a time (8 at most): 8 of 12, then 12 of 12.
    assert [(m.start, m.done, m.total) for m in answers] == [(0, 8, 12), (8, 12, 12)]
    assert not any(m.failed or m.error or m.cancelled for m in answers)
    batched = [image for m in answers for image in m.images]
    model = load_model(RECIPE.model, device="cpu")
    lone = [decode(model.vae, Checkpoint.from_bytes(s.checkpoint).x0_pred) for s in steps]
    differences = [
        np.abs(a.astype(int) - b.astype(int)) for a, b in zip(batched, lone, strict=True)
    ]
    # Measured on CPU: the VAE is not batch-invariant in float32 (about 1e-6 apart), so a
    # pixel may round the other way; it is never off by more than 1.
    assert all(d.max() <= 1 for d in differences)
    assert np.mean([(d > 0).mean() for d in differences]) < 0.01
    assert batched[-1].shape == (RECIPE.height, RECIPE.width, 3)


def test_the_static_view_decodes_unit_variance_x_t(run):
    client, collector, steps = run
    client.send(
        DecodeSteps(
            "xt", tuple(s.checkpoint for s in steps[:3]), "xt", tuple(s.sigma for s in steps)
        )
    )
    (answer,) = _wait(lambda: [m for m in _answers(collector, "xt") if m.last])
    assert answer.done == 3 and [image.shape for image in answer.images] == [(64, 64, 3)] * 3
    # each as the scrub's lone Decode of x_t gives it (to a rounding of 1)
    for index, step in enumerate(steps[:3]):
        client.send(Decode(("v", index, "xt"), step.checkpoint, "xt", step.sigma))
        (lone,) = _wait(lambda i=index: [m for m in collector.of(Decoded) if m.key[1] == i])
        assert np.abs(lone.image.astype(int) - answer.images[index].astype(int)).max() <= 1


def test_cancelling_stops_the_decodes_before_the_end(run):
    client, collector, steps = run
    many = tuple(step.checkpoint for step in steps) * 8  # 96 decodes, 12 batches
    client.send(DecodeSteps("cancelled", many))
    client.send(CancelDecodeSteps("cancelled"))
    answers = _wait(
        lambda: (
            [m for m in _answers(collector, "cancelled") if m.last]
            and _answers(collector, "cancelled")
        )
    )
    assert answers[-1].cancelled and answers[-1].done < len(many)
    assert sum(len(m.images) for m in answers) < len(many)
