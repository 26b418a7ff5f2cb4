"""The one background thread that owns torch.

Threading contract
------------------
- A single ``threading.Thread`` imports torch/diffusers, loads the model and
  runs every job; nothing else in the app touches torch. The UI thread only
  calls the thread-safe request methods below, which never block on work.
- Generation jobs run one at a time, in the order submitted. Full-resolution
  decodes of a stored step and prompt token counts are "latest wins" requests:
  a newer one replaces a waiting older one, and they are served between the
  steps of a running generation so scrubbing stays responsive.
- Results cross back to the UI thread through one queued signal, ``message``,
  carrying one of the typed message dataclasses below. Every step of a run is
  sent (the document keeps them all); the UI shows only the newest preview.
- ``cancel`` takes effect before the next step; ``stop`` cancels everything and
  joins the thread, so closing the window never leaves it running.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from studio.engine.recipe import Recipe

# ---- messages (worker -> UI) ---------------------------------------------------


@dataclass(frozen=True)
class ModelLoading:
    ref: str


@dataclass(frozen=True)
class ModelLoaded:
    ref: str
    description: str
    size_factor: int


@dataclass(frozen=True)
class ModelFailed:
    ref: str
    error: str


@dataclass(frozen=True)
class JobInfo:
    """A job as the queue view shows it."""

    job_id: int
    label: str
    running: bool


@dataclass(frozen=True)
class QueueChanged:
    jobs: tuple[JobInfo, ...]


@dataclass(frozen=True)
class JobStarted:
    job_id: int
    recipe: Recipe
    first_step: int
    total_steps: int


@dataclass(frozen=True)
class StepReady:
    """One completed step; ``checkpoint`` is the engine's Checkpoint (opaque to the UI)."""

    job_id: int
    index: int
    total: int
    timestep: float
    sigma: float | None
    checkpoint: Any
    preview_x0: np.ndarray
    preview_xt: np.ndarray
    elapsed: float
    steps_done: int


@dataclass(frozen=True)
class JobFinished:
    job_id: int
    image: np.ndarray
    elapsed: float


@dataclass(frozen=True)
class JobCancelled:
    job_id: int
    steps_done: int


@dataclass(frozen=True)
class JobFailed:
    job_id: int
    error: str
    steps_done: int


@dataclass(frozen=True)
class Decoded:
    key: Hashable
    image: np.ndarray


@dataclass(frozen=True)
class DecodeFailed:
    key: Hashable
    error: str


@dataclass(frozen=True)
class ModelList:
    """(label, ref) pairs for the model picker."""

    models: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PromptInfo:
    text: str
    used: int
    limit: int
    dropped: str


# ---- requests (UI -> worker) -----------------------------------------------------


@dataclass
class GenerationJob:
    """Run ``recipe`` from noise, or resume from ``start`` (a Checkpoint or its bytes)."""

    job_id: int
    recipe: Recipe
    start: Any = None
    label: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class _DecodeRequest:
    key: Hashable
    checkpoint: Any
    which: str  # "x0" or "xt"
    sigma: float | None = None


def _default_load_model(ref: str) -> Any:
    import torch

    from studio.engine.models import load_model, torch_threads

    # All cores but one: that one stays free for the UI thread.
    torch.set_num_threads(torch_threads(reserve=1))
    return load_model(ref)


def _default_list_models(folders: tuple[str, ...]) -> list[tuple[str, str]]:
    from pathlib import Path

    from studio.engine.models import list_models

    return list_models([Path(f) for f in folders])


def _default_make_sampler(model: Any) -> Any:
    from studio.engine.sampler import Sampler

    return Sampler(model)


class Worker(QObject):
    """Owns the model and the sampler on a background thread; see the module docstring."""

    message = Signal(object)

    def __init__(
        self,
        parent: QObject | None = None,
        load_model: Callable[[str], Any] = _default_load_model,
        make_sampler: Callable[[Any], Any] = _default_make_sampler,
        list_models: Callable[[tuple[str, ...]], list[tuple[str, str]]] = _default_list_models,
    ) -> None:
        super().__init__(parent)
        self._load_model_fn = load_model
        self._make_sampler_fn = make_sampler
        self._list_models_fn = list_models
        self._model_list_request: tuple[str, ...] | None = None
        self._cond = threading.Condition()
        self._jobs: deque[GenerationJob] = deque()
        self._running: GenerationJob | None = None
        self._model_request: str | None = None
        self._decode_request: _DecodeRequest | None = None
        self._prompt_request: tuple[str, ...] | None = None
        self._stopping = False
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        # Touched only on the worker thread:
        self._model: Any = None
        self._model_ref: str | None = None
        self._sampler: Any = None

    # ---- lifecycle (UI thread) ----------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="noise-studio-worker", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Cancel all jobs and join the thread; returns False if it did not end within ``timeout``."""
        with self._cond:
            self._stopping = True
            for job in self._jobs:
                job.cancel.set()
            self._jobs.clear()
            if self._running is not None:
                self._running.cancel.set()
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- requests (thread-safe, never block) ----------------------------------

    def load_model(self, ref: str) -> None:
        with self._cond:
            self._model_request = ref
            self._cond.notify_all()

    def submit(self, recipe: Recipe, start: Any = None, label: str = "") -> int:
        """Queue a generation; returns its job id."""
        with self._cond:
            job = GenerationJob(next(self._ids), recipe, start, label or _job_label(recipe))
            self._jobs.append(job)
            self._cond.notify_all()
        self._post_queue()
        return job.job_id

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job (running or queued), or with no id the running one."""
        cancelled_waiting: list[int] = []
        with self._cond:
            running = self._running
            if running is not None and job_id in (None, running.job_id):
                running.cancel.set()
            for job in list(self._jobs):
                if job.job_id == job_id:
                    self._jobs.remove(job)
                    cancelled_waiting.append(job.job_id)
        for waiting_id in cancelled_waiting:
            self.message.emit(JobCancelled(waiting_id, 0))
        if cancelled_waiting:
            self._post_queue()

    def cancel_all(self) -> None:
        with self._cond:
            waiting = [job.job_id for job in self._jobs]
            self._jobs.clear()
            if self._running is not None:
                self._running.cancel.set()
        for job_id in waiting:
            self.message.emit(JobCancelled(job_id, 0))
        self._post_queue()

    def request_decode(
        self, key: Hashable, checkpoint: Any, which: str = "x0", sigma: float | None = None
    ) -> None:
        """Full VAE decode of a stored step's x0-hat (``which="x0"``) or x_t (``"xt"``).

        ``sigma`` is the step's noise level (Step.sigma); x_t is brought to unit variance
        with it before decoding, as the fast preview does."""
        with self._cond:
            self._decode_request = _DecodeRequest(key, checkpoint, which, sigma)
            self._cond.notify_all()

    def request_prompt_info(self, *texts: str) -> None:
        """Token counts for each text (one PromptInfo message each), once a model is loaded."""
        with self._cond:
            self._prompt_request = texts
            self._cond.notify_all()

    def request_model_list(self, folders: tuple[str, ...] = ()) -> None:
        """Scan for models (bundled, ``folders``, the Hugging Face cache); answers with ModelList."""
        with self._cond:
            self._model_list_request = tuple(folders)
            self._cond.notify_all()

    def queued_jobs(self) -> tuple[JobInfo, ...]:
        with self._cond:
            return self._queue_snapshot()

    # ---- worker thread ----------------------------------------------------------

    def _queue_snapshot(self) -> tuple[JobInfo, ...]:
        jobs = []
        if self._running is not None:
            jobs.append(JobInfo(self._running.job_id, self._running.label, True))
        jobs += [JobInfo(j.job_id, j.label, False) for j in self._jobs]
        return tuple(jobs)

    def _post_queue(self) -> None:
        # Snapshot and post under the lock, so that the UI receives snapshots in the order taken.
        with self._cond:
            self.message.emit(QueueChanged(self._queue_snapshot()))

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not (
                    self._model_request or self._has_side_requests() or self._jobs
                ):
                    self._cond.wait()
                if self._stopping:
                    return
                model_ref, self._model_request = self._model_request, None
                job = None
                if model_ref is None and not self._has_side_requests():
                    job = self._jobs.popleft()
                    self._running = job
            if model_ref is not None:
                self._ensure_model(model_ref)
                continue
            if job is None:
                self._serve_side_requests()
                continue
            self._post_queue()
            try:
                self._run_job(job)
            finally:
                with self._cond:
                    self._running = None
                self._post_queue()

    def _ensure_model(self, ref: str) -> bool:
        if self._model is not None and self._model_ref == ref:
            return True
        self.message.emit(ModelLoading(ref))
        try:
            model = self._load_model_fn(ref)
            sampler = self._make_sampler_fn(model)
        except Exception as exc:
            self.message.emit(ModelFailed(ref, _one_sentence(exc)))
            return False
        self._model, self._model_ref, self._sampler = model, ref, sampler
        self.message.emit(
            ModelLoaded(ref, str(model.describe()), int(getattr(model, "size_factor", 8)))
        )
        return True

    def _has_side_requests(self) -> bool:
        return (
            self._decode_request is not None
            or self._prompt_request is not None
            or self._model_list_request is not None
        )

    def _serve_side_requests(self) -> None:
        """Serve the waiting decode, prompt-info and model-list requests, if any (latest wins)."""
        with self._cond:
            decode, self._decode_request = self._decode_request, None
            prompts, self._prompt_request = self._prompt_request, None
            folders, self._model_list_request = self._model_list_request, None
        if decode is not None:
            self._decode(decode)
        if prompts is not None and self._sampler is not None:
            for text in prompts:
                try:
                    info = self._sampler.prompt_info(text)
                except Exception:
                    continue
                self.message.emit(_prompt_info_message(text, info))
        if folders is not None:
            try:
                models = self._list_models_fn(folders)
            except Exception:
                return
            self.message.emit(ModelList(tuple((str(label), str(ref)) for label, ref in models)))

    def _decode(self, request: _DecodeRequest) -> None:
        if self._sampler is None:
            self.message.emit(DecodeFailed(request.key, "No model is loaded."))
            return
        try:
            checkpoint = _as_checkpoint(request.checkpoint)
            if request.which == "xt":
                latent = _unit_variance(checkpoint.latent, checkpoint.recipe.sampler, request.sigma)
            else:
                latent = checkpoint.x0_pred
            image = self._sampler.decode(latent)
        except Exception as exc:
            self.message.emit(DecodeFailed(request.key, _one_sentence(exc)))
            return
        self.message.emit(Decoded(request.key, image))

    def _run_job(self, job: GenerationJob) -> None:
        steps_done = 0
        try:
            if not self._ensure_model(job.recipe.model):
                raise RuntimeError(f"The model {job.recipe.model!r} could not be loaded.")
            job.recipe.validate(getattr(self._model, "size_factor", 8))
            start = _as_checkpoint(job.start)
            first = 0 if start is None else int(start.step_index) + 1
            self.message.emit(JobStarted(job.job_id, job.recipe, first, job.recipe.steps))
            began = time.perf_counter()
            if start is not None and first >= job.recipe.steps:  # branching from the last step
                image = self._sampler.decode(start.latent)
                self.message.emit(JobFinished(job.job_id, image, time.perf_counter() - began))
                return
            last = None
            for step in self._sampler.run(job.recipe, start=start, cancel=job.cancel):
                steps_done += 1
                last = step
                self.message.emit(
                    StepReady(
                        job_id=job.job_id,
                        index=int(step.index),
                        total=int(step.total),
                        timestep=float(step.timestep),
                        sigma=None if step.sigma is None else float(step.sigma),
                        checkpoint=step.checkpoint,
                        preview_x0=step.preview_x0,
                        preview_xt=step.preview_xt,
                        elapsed=time.perf_counter() - began,
                        steps_done=steps_done,
                    )
                )
                self._serve_side_requests()
                if job.cancel.is_set():
                    break
            complete = last is not None and int(last.index) == int(last.total) - 1
            if job.cancel.is_set() or not complete:
                self.message.emit(JobCancelled(job.job_id, steps_done))
                return
            image = self._sampler.decode(last.latent)
            self.message.emit(JobFinished(job.job_id, image, time.perf_counter() - began))
        except Exception as exc:
            if not _is_expected(exc):  # a bug: keep its traceback for the log
                traceback.print_exc()
            self.message.emit(JobFailed(job.job_id, _one_sentence(exc), steps_done))


def _is_expected(exc: BaseException) -> bool:
    """Errors that already carry one sentence for the user (bad recipe, model, NaN, out of memory)."""
    from studio.engine.errors import EngineError
    from studio.engine.recipe import RecipeError

    return isinstance(exc, (EngineError, RecipeError))


def _as_checkpoint(value: Any) -> Any:
    """``value`` itself, or the Checkpoint parsed from it when it is a stored step's bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        from studio.engine.checkpoint import Checkpoint

        return Checkpoint.from_bytes(bytes(value))
    return value


def _unit_variance(latent: Any, sampler: str, sigma: float | None) -> Any:
    """Samplers that work in sigma space keep x_t = x0 + sigma * noise; scale it like a
    variance-preserving latent so the VAE sees values in its usual range."""
    if sigma is None or not math.isfinite(sigma):
        return latent
    from studio.engine.schedulers import sampler_spec

    if sampler_spec(sampler).sigma_space:
        return latent / math.sqrt(1.0 + sigma * sigma)
    return latent


def _job_label(recipe: Recipe) -> str:
    prompt = " ".join(recipe.prompt.split())
    if len(prompt) > 32:
        prompt = prompt[:31] + "…"
    return f"{prompt or '(no prompt)'} · seed {recipe.seed}"


def _one_sentence(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _prompt_info_message(text: str, info: Any) -> PromptInfo:
    """Accept the engine's prompt info as an object, a mapping or a tuple."""
    if isinstance(info, dict):
        get = info.get
    elif isinstance(info, tuple) and not hasattr(info, "_fields"):
        values = dict(zip(("used", "limit", "dropped"), info, strict=False))
        get = values.get
    else:

        def get(name: str, default: Any = None) -> Any:
            return getattr(info, name, default)

    used = get("used", None)
    if used is None:
        used = get("tokens", 0)
    dropped = get("dropped_text", None) or get("dropped", "") or ""
    if not isinstance(dropped, str):
        dropped = " ".join(str(t) for t in dropped)
    return PromptInfo(text, int(used), int(get("limit", 77) or 77), dropped)
