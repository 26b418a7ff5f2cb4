"""The worker protocol with a fake engine: message order, queueing, cancel, latest-wins requests."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
from PySide6.QtCore import QObject, Qt, Signal, Slot

from studio.engine.recipe import Recipe
from studio.worker import (
    Decoded,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelLoaded,
    ModelLoading,
    QueueChanged,
    StepReady,
    Worker,
)

RECIPE = Recipe("a fox", seed=1, steps=5, width=32, height=32)


@dataclass
class FakeCheckpoint:
    step_index: int
    latent: np.ndarray
    x0_pred: np.ndarray


@dataclass
class FakeStep:
    index: int
    total: int
    timestep: float
    sigma: float
    latent: np.ndarray
    x0_pred: np.ndarray
    preview_x0: np.ndarray
    preview_xt: np.ndarray
    checkpoint: FakeCheckpoint


class FakeModel:
    size_factor = 8

    def describe(self) -> str:
        return "FAKE float32"


class FakeSampler:
    """Steps on demand: each step waits for ``gate`` when one is set, so tests control timing."""

    def __init__(self) -> None:
        self.gate: threading.Semaphore | None = None
        self.decoded: list[float] = []

    def run(self, recipe, start=None, cancel=None):
        first = 0 if start is None else start.step_index + 1
        for index in range(first, recipe.steps):
            if cancel is not None and cancel.is_set():
                return
            if self.gate is not None:
                self.gate.acquire()
            latent = np.full((1,), float(index))
            pixels = np.full((4, 4, 3), index, np.uint8)
            yield FakeStep(
                index,
                recipe.steps,
                999.0 - index,
                1.0,
                latent,
                latent,
                pixels,
                pixels,
                FakeCheckpoint(index, latent, latent),
            )

    def decode(self, latent):
        self.decoded.append(float(latent[0]))
        return np.full((32, 32, 3), int(latent[0]), np.uint8)

    def prompt_info(self, text):
        return {"tokens": len(text.split()), "limit": 75, "dropped_text": ""}


class Collector(QObject):
    """Receives worker messages on the UI thread and re-emits them there."""

    received = Signal(object)

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.messages: list[object] = []
        worker.message.connect(self.on_message, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def on_message(self, message: object) -> None:
        self.messages.append(message)
        self.received.emit(message)

    def of(self, kind) -> list:
        return [m for m in self.messages if isinstance(m, kind)]


@pytest.fixture
def fake(qapp):
    sampler = FakeSampler()
    worker = Worker(
        load_model=lambda ref: FakeModel(),
        make_sampler=lambda model: sampler,
        list_models=lambda folders: [("fake", "bundled")],
    )
    collector = Collector(worker)
    worker.start()
    yield worker, sampler, collector
    assert worker.stop(timeout=10)


def wait_for(qtbot, collector, kind, count=1):
    qtbot.waitUntil(lambda: len(collector.of(kind)) >= count, timeout=10_000)


def test_a_job_sends_started_every_step_then_finished(qtbot, fake):
    worker, _sampler, collector = fake
    job = worker.submit(RECIPE)
    wait_for(qtbot, collector, JobFinished)
    kinds = [type(m) for m in collector.messages if not isinstance(m, QueueChanged)]
    assert kinds == [ModelLoading, ModelLoaded, JobStarted] + [StepReady] * 5 + [JobFinished]
    assert [m.index for m in collector.of(StepReady)] == [0, 1, 2, 3, 4]
    assert all(m.job_id == job for m in collector.of(StepReady))
    assert collector.of(JobFinished)[0].image.shape == (32, 32, 3)
    assert collector.of(ModelLoaded)[0].description == "FAKE float32"


def test_jobs_run_one_at_a_time_in_order_and_the_queue_is_reported(qtbot, fake):
    worker, sampler, collector = fake
    sampler.gate = threading.Semaphore(0)
    first = worker.submit(RECIPE)
    second = worker.submit(RECIPE.with_changes(seed=2))
    qtbot.waitUntil(
        lambda: any(len(m.jobs) == 2 and m.jobs[0].running for m in collector.of(QueueChanged))
    )
    for _ in range(10):
        sampler.gate.release()
    wait_for(qtbot, collector, JobFinished, 2)
    assert [m.job_id for m in collector.of(JobFinished)] == [first, second]
    started = [m.job_id for m in collector.messages if isinstance(m, (JobStarted, JobFinished))]
    assert started == [first, first, second, second]
    assert collector.of(QueueChanged)[-1].jobs == ()


def test_cancel_stops_within_one_step(qtbot, fake):
    worker, sampler, collector = fake
    sampler.gate = threading.Semaphore(2)
    job = worker.submit(RECIPE)
    wait_for(qtbot, collector, StepReady, 2)
    worker.cancel()
    sampler.gate.release()  # the step in flight may finish
    wait_for(qtbot, collector, JobCancelled)
    cancelled = collector.of(JobCancelled)[0]
    assert cancelled.job_id == job
    assert cancelled.steps_done in (2, 3)
    assert not collector.of(JobFinished)


def test_cancelling_a_waiting_job_removes_it(qtbot, fake):
    worker, sampler, collector = fake
    sampler.gate = threading.Semaphore(0)
    worker.submit(RECIPE)
    waiting = worker.submit(RECIPE)
    worker.cancel(waiting)
    wait_for(qtbot, collector, JobCancelled)
    assert collector.of(JobCancelled)[0] == JobCancelled(waiting, 0)
    for _ in range(5):
        sampler.gate.release()
    wait_for(qtbot, collector, JobFinished)
    assert len(collector.of(JobStarted)) == 1


def test_resuming_from_a_checkpoint_runs_only_the_remaining_steps(qtbot, fake):
    worker, _sampler, collector = fake
    start = FakeCheckpoint(2, np.zeros(1), np.zeros(1))
    worker.submit(RECIPE, start=start)
    wait_for(qtbot, collector, JobFinished)
    assert collector.of(JobStarted)[0].first_step == 3
    assert [m.index for m in collector.of(StepReady)] == [3, 4]


def test_an_invalid_recipe_fails_with_one_sentence(qtbot, fake):
    worker, _sampler, collector = fake
    worker.submit(RECIPE.with_changes(width=33))
    wait_for(qtbot, collector, JobFailed)
    assert "multiple of 8" in collector.of(JobFailed)[0].error


def test_expected_failures_log_no_traceback_but_bugs_do(qtbot, fake, capfd, monkeypatch):
    from studio.engine.errors import NonFiniteError

    worker, sampler, collector = fake
    monkeypatch.setattr(
        sampler, "decode", lambda latent: (_ for _ in ()).throw(NonFiniteError("NaN at step 3.", 2))
    )
    worker.submit(RECIPE)
    wait_for(qtbot, collector, JobFailed)
    assert "Traceback" not in capfd.readouterr().err
    monkeypatch.setattr(sampler, "decode", lambda latent: (_ for _ in ()).throw(KeyError("bug")))
    worker.submit(RECIPE)
    wait_for(qtbot, collector, JobFailed, count=2)
    assert "Traceback" in capfd.readouterr().err
    assert collector.of(JobFailed)[0].error.startswith("NaN")


def test_decode_requests_are_latest_wins(qtbot, fake):
    worker, sampler, collector = fake
    worker.load_model("bundled")
    wait_for(qtbot, collector, ModelLoaded)
    sampler.gate = threading.Semaphore(0)
    worker.submit(RECIPE)  # holds the worker inside step 0
    qtbot.waitUntil(lambda: bool(collector.of(JobStarted)))
    for value in (1.0, 2.0, 3.0):
        worker.request_decode(
            ("v", int(value)), FakeCheckpoint(0, np.full(1, value), np.full(1, value))
        )
    for _ in range(5):
        sampler.gate.release()
    wait_for(qtbot, collector, JobFinished)
    assert [m.key for m in collector.of(Decoded)] == [("v", 3)]
