"""Driving a worker client in tests: a fake engine, a gate on any sampler, and a collector.

The fake engine (``FakeModel``, ``FakeSampler``, ``FakeCheckpoint``) stands in
for torch in the worker; ``test_protocol.py`` runs the same suite against it
and against the real engine on a tiny model, so the fake cannot drift from
what the real one does.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass

import numpy as np

from studio.engine.recipe import Recipe
from studio.protocol import Cancel, CancelAll, Decode, Generate, LoadModel, Resume
from studio.workers.client import WorkerClient
from studio.workers.local import LocalWorker

RECIPE = Recipe("a fox", seed=1, steps=5, width=32, height=32)


@dataclass
class FakeCheckpoint:
    step_index: int
    latent: np.ndarray
    x0_pred: np.ndarray
    recipe: Recipe = RECIPE

    def to_bytes(self) -> bytes:
        return json.dumps({"step": self.step_index, "value": float(self.latent[0])}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> FakeCheckpoint:
        fields = json.loads(data)
        value = np.full(1, fields["value"])
        return cls(fields["step"], value, value)


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


class Gate:
    """Holds a sampler before each step while set: ``gate`` is a semaphore or None."""

    gate: threading.Semaphore | None = None

    def wait(self) -> None:
        gate = self.gate
        if gate is not None:
            gate.acquire()


class FakeSampler(Gate):
    """Steps whose latent is the step index; decoding gives an image full of that value."""

    def __init__(self) -> None:
        self.decoded: list[float] = []

    def run(self, recipe, start=None, cancel=None):
        first = 0 if start is None else start.step_index + 1
        for index in range(first, recipe.steps):
            if cancel is not None and cancel.is_set():
                return
            self.wait()
            latent = np.full((1,), float(index))
            pixels = np.full((4, 4, 3), index, np.uint8)
            checkpoint = FakeCheckpoint(index, latent, latent, recipe)
            yield FakeStep(
                index, recipe.steps, 999.0 - index, 1.0, latent, latent, pixels, pixels, checkpoint
            )

    def decode(self, latent, cancel=None):
        self.decoded.append(float(latent[0]))
        return np.full((32, 32, 3), int(latent[0]), np.uint8)

    def decode_batch_size(self, latent):
        return 4

    def decode_many(self, latents, cancel=None):
        return [self.decode(latent) for latent in latents]

    def prompt_info(self, text):
        return {"tokens": len(text.split()), "limit": 75, "dropped_text": ""}


class GatedSampler(Gate):
    """The real engine's Sampler, held before each step like the fake."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def run(self, recipe, start=None, cancel=None):
        first = 0 if start is None else start.step_index + 1
        steps = self.inner.run(recipe, start=start, cancel=cancel)
        for _index in range(first, recipe.steps):  # one wait per step, as the fake does
            self.wait()
            step = next(steps, None)
            if step is None:
                return
            yield step

    def decode(self, latent, cancel=None):
        return self.inner.decode(latent)

    def decode_batch_size(self, latent):
        return self.inner.decode_batch_size(latent)

    def decode_many(self, latents, cancel=None):
        return self.inner.decode_many(latents, cancel=cancel)

    def prompt_info(self, text):
        return self.inner.prompt_info(text)


def fake_worker(sampler: FakeSampler | None = None, load_model=None) -> LocalWorker:
    sampler = sampler or FakeSampler()
    return LocalWorker(
        load_model=load_model or (lambda ref: FakeModel()),
        make_sampler=lambda model: sampler,
        list_models=lambda folders: [("fake", "bundled")],
        load_checkpoint=FakeCheckpoint.from_bytes,
    )


class Collector:
    """Every message a client sends, from whichever thread sends it."""

    def __init__(self, client: WorkerClient) -> None:
        self.messages: list[object] = []
        self._lock = threading.Lock()
        client.listen(self._receive)

    def _receive(self, message: object) -> None:
        with self._lock:
            self.messages.append(message)

    def of(self, kind) -> list:
        with self._lock:
            return [m for m in self.messages if isinstance(m, kind)]

    def all(self) -> list:
        with self._lock:
            return list(self.messages)


class Driver:
    """Sends protocol requests to a client the way the session does, numbering jobs."""

    def __init__(self, client: WorkerClient) -> None:
        self.client = client
        self._ids = itertools.count(1)

    def submit(
        self, recipe: Recipe, start: bytes | None = None, stop_after: int | None = None
    ) -> int:
        job_id = next(self._ids)
        version_id = f"version-{job_id}"
        if start is None:
            self.client.send(Generate(job_id, version_id, recipe, stop_after=stop_after))
        else:
            self.client.send(Resume(job_id, version_id, recipe, start))
        return job_id

    def cancel(self, job_id: int | None = None) -> None:
        self.client.send(Cancel(job_id))

    def cancel_all(self) -> None:
        self.client.send(CancelAll())

    def load_model(self, ref: str) -> None:
        self.client.send(LoadModel(ref))

    def request_decode(self, key, checkpoint: bytes, which="x0", sigma=None, slot="view") -> None:
        self.client.send(Decode(key, checkpoint, which, sigma, slot))

    def stop(self, timeout: float = 10.0) -> bool:
        return self.client.stop(timeout=timeout)


def wait_for(qtbot, collector: Collector, kind: type, count: int = 1) -> None:
    qtbot.waitUntil(lambda: len(collector.of(kind)) >= count, timeout=20_000)
