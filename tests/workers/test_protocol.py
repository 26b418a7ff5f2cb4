"""One protocol suite, run against the worker on the fake engine and on the real one (tiny model).

Message order, queueing, cancel, resume, latest-wins decodes and failures, as the
session relies on them. The fake engine is held to the real engine's behaviour here.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from studio.protocol import (
    Decoded,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelLoaded,
    ModelLoading,
    QueueChanged,
    StepMade,
    StepRecord,
    from_wire,
    pack_step,
    to_wire,
    unpack_step,
)
from studio.workers.local import LocalWorker
from tests.workers.harness import (
    RECIPE,
    Collector,
    Driver,
    FakeSampler,
    GatedSampler,
    fake_worker,
)


@pytest.fixture(params=["fake engine", "tiny model"])
def worker(request, qapp, tiny_model_dir):
    """(driver, sampler with a gate, collector, recipe) on one engine."""
    if request.param == "fake engine":
        sampler = FakeSampler()
        client = fake_worker(sampler)
        recipe = RECIPE
    else:
        from studio.engine.models import load_model
        from studio.engine.sampler import Sampler

        sampler = None

        def make_sampler(model):
            nonlocal sampler
            sampler = GatedSampler(Sampler(model))
            return sampler

        client = LocalWorker(
            load_model=lambda ref: load_model(ref, device="cpu"), make_sampler=make_sampler
        )
        recipe = RECIPE.with_changes(model=str(tiny_model_dir))
    collector = Collector(client)
    client.start()
    driver = Driver(client)
    driver.load_model(recipe.model)
    _wait(collector, ModelLoaded)
    yield driver, sampler, collector, recipe
    if sampler is not None and sampler.gate is not None:
        for _ in range(20):
            sampler.gate.release()
    assert driver.stop(timeout=20)


def _wait(collector, kind, count=1, timeout=30.0):
    import time

    deadline = time.monotonic() + timeout
    while len(collector.of(kind)) < count:
        assert time.monotonic() < deadline, f"no {kind.__name__} within {timeout} s"
        time.sleep(0.005)


def test_a_job_sends_started_every_step_as_bytes_then_finished(worker):
    driver, _sampler, collector, recipe = worker
    job = driver.submit(recipe)
    _wait(collector, JobFinished)
    kinds = [type(m) for m in collector.all() if not isinstance(m, QueueChanged)]
    assert kinds == [ModelLoading, ModelLoaded, JobStarted] + [StepMade] * 5 + [JobFinished]
    steps = collector.of(StepMade)
    assert [m.step.index for m in steps] == [0, 1, 2, 3, 4]
    assert all(m.job_id == job and m.version_id == "version-1" for m in steps)
    for message in steps:
        assert isinstance(message.step, StepRecord)
        assert isinstance(message.step.checkpoint, bytes)
        assert message.step.preview_x0.dtype == np.uint8
    image = collector.of(JobFinished)[0].image
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8


def test_every_message_survives_the_wire_form(worker):
    driver, _sampler, collector, recipe = worker
    driver.submit(recipe)
    _wait(collector, JobFinished)
    for message in collector.all():
        again = from_wire(to_wire(message))
        assert type(again) is type(message)
        if isinstance(message, StepMade):
            assert again.step.checkpoint == message.step.checkpoint
            assert np.array_equal(again.step.preview_x0, message.step.preview_x0)
        elif not isinstance(message, JobFinished):
            assert again == message


def test_a_step_packs_into_one_payload_and_back(worker):
    driver, _sampler, collector, recipe = worker
    driver.submit(recipe)
    _wait(collector, JobFinished)
    for message in collector.of(StepMade):
        payload = pack_step(message)
        assert isinstance(payload, bytes)
        again = unpack_step(payload)
        assert (again.job_id, again.version_id, again.steps_done, again.elapsed) == (
            message.job_id, message.version_id, message.steps_done, message.elapsed,
        )  # fmt: skip
        step, back = message.step, again.step
        assert (back.index, back.total, back.timestep, back.sigma) == (
            step.index, step.total, step.timestep, step.sigma,
        )  # fmt: skip
        assert back.checkpoint == step.checkpoint
        for before, after in (
            (step.preview_x0, back.preview_x0),
            (step.preview_xt, back.preview_xt),
        ):
            assert after.dtype == before.dtype and after.shape == before.shape
            np.testing.assert_array_equal(after, before)


def test_jobs_run_one_at_a_time_in_order_and_the_queue_is_reported(worker):
    driver, sampler, collector, recipe = worker
    sampler.gate = threading.Semaphore(0)
    first = driver.submit(recipe)
    second = driver.submit(recipe.with_changes(seed=2))
    _wait_until(
        lambda: any(len(m.jobs) == 2 and m.jobs[0].running for m in collector.of(QueueChanged))
    )
    for _ in range(10):
        sampler.gate.release()
    _wait(collector, JobFinished, 2)
    assert [m.job_id for m in collector.of(JobFinished)] == [first, second]
    order = [m.job_id for m in collector.all() if isinstance(m, (JobStarted, JobFinished))]
    assert order == [first, first, second, second]
    assert collector.of(QueueChanged)[-1].jobs == ()


def test_cancel_stops_within_one_step(worker):
    driver, sampler, collector, recipe = worker
    sampler.gate = threading.Semaphore(2)
    job = driver.submit(recipe)
    _wait(collector, StepMade, 2)
    driver.cancel()
    sampler.gate.release()  # the step in flight may finish
    _wait(collector, JobCancelled)
    cancelled = collector.of(JobCancelled)[0]
    assert (cancelled.job_id, cancelled.version_id) == (job, "version-1")
    assert cancelled.steps_done in (2, 3)
    assert not collector.of(JobFinished)


def test_a_job_told_where_to_stop_ends_there_partial_with_no_race(worker):
    driver, _sampler, collector, recipe = worker
    early = driver.submit(recipe, stop_after=1)
    driver.submit(recipe)
    _wait(collector, JobFinished)
    assert [m.step.index for m in collector.of(StepMade) if m.job_id == early] == [0, 1]
    assert collector.of(JobCancelled) == [JobCancelled(early, "version-1", 2)]
    assert [m.job_id for m in collector.of(JobFinished)] == [early + 1]


def test_cancelling_a_waiting_job_removes_it(worker):
    driver, sampler, collector, recipe = worker
    sampler.gate = threading.Semaphore(0)
    driver.submit(recipe)
    waiting = driver.submit(recipe)
    driver.cancel(waiting)
    _wait(collector, JobCancelled)
    assert collector.of(JobCancelled)[0] == JobCancelled(waiting, "version-2", 0)
    for _ in range(5):
        sampler.gate.release()
    _wait(collector, JobFinished)
    assert len(collector.of(JobStarted)) == 1


def test_resuming_from_checkpoint_bytes_runs_only_the_remaining_steps_exactly(worker):
    driver, _sampler, collector, recipe = worker
    driver.submit(recipe)
    _wait(collector, JobFinished)
    third = collector.of(StepMade)[2].step
    driver.submit(recipe, start=third.checkpoint)
    _wait(collector, JobFinished, 2)
    assert collector.of(JobStarted)[1].first_step == 3
    resumed = [m.step for m in collector.of(StepMade) if m.job_id == 2]
    assert [s.index for s in resumed] == [3, 4]
    first_run, second_run = collector.of(JobFinished)
    assert np.array_equal(first_run.image, second_run.image)


def test_an_invalid_recipe_fails_with_one_sentence(worker):
    driver, _sampler, collector, recipe = worker
    driver.submit(recipe.with_changes(width=33))
    _wait(collector, JobFailed)
    failed = collector.of(JobFailed)[0]
    assert "width (33) must be a multiple of" in failed.error
    assert failed.version_id == "version-1"


def test_decode_requests_are_latest_wins_and_served_between_steps(worker):
    driver, sampler, collector, recipe = worker
    driver.submit(recipe)
    _wait(collector, JobFinished)
    steps = [m.step for m in collector.of(StepMade)]
    sampler.gate = threading.Semaphore(0)
    driver.submit(recipe)  # holds the worker inside its first step
    _wait(collector, JobStarted, 2)
    for step in steps[1:4]:
        driver.request_decode(("v", step.index, "x0"), step.checkpoint)
    for _ in range(5):
        sampler.gate.release()
    _wait(collector, JobFinished, 2)
    assert [m.key for m in collector.of(Decoded)] == [("v", 3, "x0")]


def test_a_decode_replaces_only_a_waiting_one_of_its_own_slot(worker):
    driver, sampler, collector, recipe = worker
    driver.submit(recipe)
    _wait(collector, JobFinished)
    steps = [m.step for m in collector.of(StepMade)]
    sampler.gate = threading.Semaphore(0)
    driver.submit(recipe)  # holds the worker inside its first step
    _wait(collector, JobStarted, 2)
    driver.request_decode(("v", steps[1].index, "x0"), steps[1].checkpoint)  # the timeline's
    driver.request_decode(("v", steps[2].index, "x0"), steps[2].checkpoint, slot="hover")
    driver.request_decode(("v", steps[3].index, "x0"), steps[3].checkpoint, slot="hover")
    for _ in range(5):
        sampler.gate.release()
    _wait(collector, JobFinished, 2)
    assert sorted(m.key for m in collector.of(Decoded)) == [("v", 1, "x0"), ("v", 3, "x0")]


def _wait_until(condition, timeout=20.0):
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_expected_failures_log_no_traceback_but_bugs_do(qapp, capfd, monkeypatch):
    from studio.engine.errors import NonFiniteError

    sampler = FakeSampler()
    client = fake_worker(sampler)
    collector = Collector(client)
    client.start()
    driver = Driver(client)
    monkeypatch.setattr(
        sampler,
        "decode",
        lambda latent, cancel=None: (_ for _ in ()).throw(NonFiniteError("NaN at step 3.", 2)),
    )
    driver.submit(RECIPE)
    _wait(collector, JobFailed)
    assert "Traceback" not in capfd.readouterr().err
    monkeypatch.setattr(
        sampler, "decode", lambda latent, cancel=None: (_ for _ in ()).throw(KeyError("bug"))
    )
    driver.submit(RECIPE)
    _wait(collector, JobFailed, count=2)
    assert "Traceback" in capfd.readouterr().err
    assert collector.of(JobFailed)[0].error.startswith("NaN")
    assert driver.stop()
