"""A GenerateBatch on the in-process worker, real engine on the tiny model: each member is
its own job (steps, ending, cancel), its result equals its recipe rendered alone, and a
resume from any stored step gives the stored final image bit for bit."""

from __future__ import annotations

import time

import numpy as np
import pytest

from studio.engine.breeding import brood
from studio.engine.recipe import Recipe
from studio.protocol import (
    Cancel,
    Generate,
    GenerateBatch,
    JobCancelled,
    JobFinished,
    JobStarted,
    LoadModel,
    ModelLoaded,
    QueueChanged,
    StepMade,
    from_wire,
    to_wire,
)
from studio.workers.local import LocalWorker
from tests.workers.harness import Collector

STEPS = 4


@pytest.fixture
def worker(tiny_model_dir):
    from studio.engine.models import load_model

    client = LocalWorker(load_model=lambda ref: load_model(ref, device="cpu"))
    collector = Collector(client)
    client.start()
    client.send(LoadModel(str(tiny_model_dir)))
    _wait(lambda: collector.of(ModelLoaded))
    yield client, collector
    assert client.stop(timeout=20)


def _wait(done, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _children(tiny_model_dir, count=3, batch=4) -> list[Recipe]:
    base = Recipe("a red fox", steps=STEPS, width=16, height=16, sampler="Euler a", batch=batch)
    base = base.with_changes(model=str(tiny_model_dir), guidance=5.0)
    return list(brood(base, ((11, 1.0), (22, 1.0)), count, 0.3, 7))


def _batch(recipes, stop_after=None) -> GenerateBatch:
    return GenerateBatch(
        tuple(
            Generate(i + 1, f"child-{i + 1}", r, stop_after=stop_after)
            for i, r in enumerate(recipes)
        )
    )


def test_members_stream_their_own_steps_and_equal_their_lone_runs_and_resumes(
    worker, tiny_sampler, tiny_model_dir
):
    client, collector = worker
    children = _children(tiny_model_dir)
    client.send(_batch(children))
    _wait(lambda: len(collector.of(JobFinished)) == 3)
    assert sorted(m.job_id for m in collector.of(JobStarted)) == [1, 2, 3]
    steps = collector.of(StepMade)
    assert [m.step.index for m in steps] == [i for i in range(STEPS) for _ in range(3)]
    assert any(
        [j.running for j in m.jobs] == [True, True, True] for m in collector.of(QueueChanged)
    ), "the three run together"
    from studio.engine.checkpoint import Checkpoint

    finished = {m.job_id: m.image for m in collector.of(JobFinished)}
    for job_id in range(1, len(children) + 1):
        started = next(m for m in collector.of(JobStarted) if m.job_id == job_id)
        assert started.recipe.batch == 4, "the recipe records its batch"
        _steps, alone = tiny_sampler.render(started.recipe)
        assert np.array_equal(alone, finished[job_id]), "its recipe alone gives its pixels"
        for stored in [m.step for m in steps if m.job_id == job_id][:-1]:
            start = Checkpoint.from_bytes(stored.checkpoint)
            resumed = list(tiny_sampler.run(started.recipe, start=start))
            image = tiny_sampler.decode(resumed[-1].latent)
            assert np.array_equal(image, finished[job_id]), f"resume after {stored.index}"
    assert not np.array_equal(finished[1], finished[2])


def test_cancelling_one_member_ends_it_and_the_rest_run_on_exactly(
    worker, tiny_sampler, tiny_model_dir
):
    client, collector = worker

    def cancel_second(message):  # on the worker thread, right after the member's first step
        if isinstance(message, StepMade) and message.job_id == 2 and message.step.index == 0:
            client.send(Cancel(2))

    client.listen(lambda m: (collector._receive(m), cancel_second(m)))
    children = _children(tiny_model_dir)
    client.send(_batch(children))
    _wait(lambda: len(collector.of(JobFinished)) == 2)
    cancelled = collector.of(JobCancelled)
    assert [(m.job_id, m.steps_done) for m in cancelled] == [(2, 1)]
    last_of_second = max(
        i for i, m in enumerate(collector.all()) if isinstance(m, StepMade) and m.job_id == 2
    )
    ended = collector.all().index(cancelled[0])
    later_steps = [m for m in collector.all()[ended:] if isinstance(m, StepMade)]
    assert ended > last_of_second and later_steps, "ended at once, while the others ran on"
    for message in collector.of(JobFinished):
        _steps, alone = tiny_sampler.render(children[message.job_id - 1])
        assert np.array_equal(alone, message.image)


def test_members_told_where_to_stop_end_there_partial(worker, tiny_model_dir):
    client, collector = worker
    client.send(_batch(_children(tiny_model_dir), stop_after=1))
    _wait(lambda: len(collector.of(JobCancelled)) == 3)
    assert [m.steps_done for m in collector.of(JobCancelled)] == [2, 2, 2]
    assert {m.step.index for m in collector.of(StepMade)} == {0, 1}
    assert not collector.of(JobFinished)


def test_a_batch_survives_the_wire_form(tiny_model_dir):
    request = _batch(_children(tiny_model_dir), stop_after=2)
    assert from_wire(to_wire(request)) == request
