"""The in-process worker: the one background thread that owns torch.

Threading contract
------------------
- A single ``threading.Thread`` imports torch/diffusers, loads the model and
  runs every job; nothing else in the app touches torch. ``send`` is
  thread-safe and never blocks on work.
- Jobs (Generate, Resume) run one at a time, in the order sent, except the members of
  a :class:`~studio.protocol.GenerateBatch`, which run together as one UNet batch
  (``Sampler.run_batch``), each still its own job: its own steps, ending and cancel (a
  cancelled member leaves the batch before its next step; the others run on, with
  the same bits). Decode (per slot), Forward and
  TokenInfo are "latest wins": a newer one replaces a waiting older one, and
  they are served between the steps of a running job so scrubbing stays
  responsive. DecodeSteps (an export's frames) are served in turn, one VAE batch
  between steps, each batch posted as a StepsDecoded.
- Right after each step, on this thread, the step's checkpoint is serialised
  to bytes and sent with its previews as a :class:`~studio.protocol.StepRecord`;
  no tensor ever leaves the thread. Decode requests carry checkpoint bytes too.
- The tiny-decoder preview is latest wins (FrameShown): a step the UI had no time for is
  sent with the linear map, and its x0-hat is kept here (SKIPPED_LATENT_BYTES at most)
  until the job ends; then those steps are decoded with the tiny decoder in batches and
  sent as one StepPreviews, after the job's ending, to replace the stored previews.
- Cancel takes effect before the next block of the model (text encoder, UNet,
  VAE decoder; see :mod:`studio.engine.sampler`); ``stop`` cancels everything and
  joins the thread, so closing the window never leaves it running.

This module imports no Qt; :class:`~studio.workers.qt.MessageChannel` brings
its messages to the UI thread.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.engine.recipe import RecipeError
from studio.protocol import (
    Cancel,
    CancelAll,
    CancelDecodeSteps,
    Decode,
    Decoded,
    DecodeFailed,
    DecodeSteps,
    Forward,
    ForwardMade,
    FrameShown,
    Generate,
    GenerateBatch,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobInfo,
    JobRequest,
    JobStarted,
    ListModels,
    LoadModel,
    ModelFailed,
    ModelList,
    ModelLoaded,
    ModelLoading,
    PromptInfo,
    QueueChanged,
    Request,
    Resume,
    Score,
    StepMade,
    StepPreviews,
    StepRecord,
    StepsDecoded,
    TokenInfo,
    job_label,
)
from studio.workers.client import WorkerClient

FRAME_RATE = 30
"""Tiny-decoder previews a second at most, the screen's pace; other steps keep the linear map
until their run ends (StepPreviews)."""
SKIPPED_LATENT_BYTES = 64 * 1024 * 1024
"""The x0-hat latents one run keeps for StepPreviews at most (an SDXL latent is 128 KiB in
fp16, so about 500 steps); steps past it keep the linear preview."""


@dataclass
class _Job:
    request: JobRequest
    cancel: threading.Event = field(default_factory=threading.Event)
    batch: int | None = None
    """The GenerateBatch it came in (a number per batch), None for a job on its own."""

    @property
    def job_id(self) -> int:
        return self.request.job_id

    @property
    def label(self) -> str:
        return request_label(self.request)


@dataclass(eq=False)
class _StepDecodes:
    """A DecodeSteps being served a batch at a time: how far it is, and its cancel."""

    request: DecodeSteps
    done: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _Run:
    """A generation job as it runs on the worker thread: what it started from, and how far."""

    job: _Job
    recipe: Any
    start: Any
    images: tuple[Any, ...]
    first: int
    began: float = field(default_factory=time.perf_counter)
    steps_done: int = 0
    last: Any = None
    ended: bool = False
    skipped: list[tuple[int, Any]] = field(default_factory=list)
    """(step index, x0-hat latent) of steps sent with the linear map (see StepPreviews)."""
    skipped_bytes: int = 0


def request_label(request: JobRequest) -> str:
    """What the queue shows for a job: its own label, or its prompt and seed (its items)."""
    if isinstance(request, Score):
        from studio.workers.score_job import score_label

        return request.label or score_label(request)
    return request.label or job_label(request.recipe)


def _default_load_model(ref: str, config: str = "", memory_saving: str = "") -> Any:
    import torch

    from studio.engine.memory_saving import MemorySaving
    from studio.engine.models import load_model, studio_torch_threads

    torch.set_num_threads(studio_torch_threads())
    return load_model(
        ref,
        config_dir=config or None,
        memory_saving=MemorySaving.with_environment(memory_saving),
    )


def _default_list_models(folders: tuple[str, ...]) -> list[tuple[str, str]]:
    from pathlib import Path

    from studio.engine.models import list_models

    return list_models([Path(f) for f in folders])


def _default_make_sampler(model: Any) -> Any:
    from studio.engine.sampler import Sampler

    return Sampler(model)


def _default_load_checkpoint(data: bytes) -> Any:
    from studio.engine.checkpoint import Checkpoint

    return Checkpoint.from_bytes(data)


class LocalWorker(WorkerClient):
    """Owns the model and the sampler on a background thread; see the module docstring.

    The four callables are the engine; tests pass fakes of them, and the
    protocol suite holds the fakes to the real engine's behaviour. ``load_model`` is
    called as ``(ref)``, with the single file's config folder as a second argument when
    there is one, and ``memory_saving=`` (:class:`~studio.protocol.LoadModel`'s) when
    it is not ""."""

    batches = True

    def __init__(
        self,
        load_model: Callable[[str], Any] = _default_load_model,
        make_sampler: Callable[[Any], Any] = _default_make_sampler,
        list_models: Callable[[tuple[str, ...]], list[tuple[str, str]]] = _default_list_models,
        load_checkpoint: Callable[[bytes], Any] = _default_load_checkpoint,
    ) -> None:
        super().__init__()
        self._load_model_fn = load_model
        self._make_sampler_fn = make_sampler
        self._list_models_fn = list_models
        self._load_checkpoint_fn = load_checkpoint
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._running: list[_Job] = []
        self._batches = itertools.count(1)
        self._model_request: LoadModel | None = None
        self._configs: dict[str, str] = {}  # the config folder each single-file ref was given
        self._decode_requests: dict[str, Decode] = {}  # the latest waiting one per slot
        self._step_decodes: deque[_StepDecodes] = deque()
        self._forward_request: Forward | None = None
        self._prompt_request: TokenInfo | None = None
        self._model_list_request: ListModels | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Touched only on the worker thread:
        self._model: Any = None
        self._model_ref: str | None = None
        self._model_config = ""
        self._memory_saving = ""  # what every load uses, from the latest LoadModel
        self._model_saving = ""  # what the loaded model was loaded with
        self._sampler: Any = None
        self._frame_shown = threading.Event()
        self._frame_shown.set()  # the first step of a run is always drawn
        self._last_frame = 0.0

    def _frame_wanted(self) -> bool:
        """The sampler's gate (worker thread): a tiny-decoder preview for this step only if
        the UI has shown the last one and a frame interval has passed (latest wins)."""
        now = time.perf_counter()
        if not self._frame_shown.is_set() or now - self._last_frame < 1.0 / FRAME_RATE:
            return False
        self._frame_shown.clear()
        self._last_frame = now
        return True

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="noise-studio-worker", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        with self._cond:
            self._stopping = True
            for job in self._jobs:
                job.cancel.set()
            self._jobs.clear()
            for job in self._running:
                job.cancel.set()
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- requests (thread-safe, never block) ------------------------------------------

    def send(self, request: Request) -> None:
        match request:
            case Generate() | Resume() | Score():
                with self._cond:
                    self._jobs.append(_Job(request))
                    self._cond.notify_all()
                self._post_queue()
            case GenerateBatch():
                with self._cond:  # queued at once, so the worker finds them together
                    batch = next(self._batches)
                    self._jobs.extend(_Job(job, batch=batch) for job in request.jobs)
                    self._cond.notify_all()
                self._post_queue()
            case Cancel():
                self._cancel(request.job_id)
            case CancelAll():
                self._cancel_all()
            case FrameShown():
                self._frame_shown.set()
            case LoadModel():
                self._set_request("_model_request", request)
            case Decode():
                with self._cond:
                    self._decode_requests[request.slot] = request
                    self._cond.notify_all()
            case DecodeSteps():
                with self._cond:
                    self._step_decodes.append(_StepDecodes(request))
                    self._cond.notify_all()
            case CancelDecodeSteps():
                self._cancel_step_decodes(request.key)
            case Forward():
                self._set_request("_forward_request", request)
            case TokenInfo():
                self._set_request("_prompt_request", request)
            case ListModels():
                self._set_request("_model_list_request", request)
            case _:
                raise TypeError(f"{type(request).__name__} is not a worker request.")

    def _set_request(self, slot: str, value: object) -> None:
        with self._cond:
            setattr(self, slot, value)
            self._cond.notify_all()

    def _cancel(self, job_id: int | None) -> None:
        dropped: list[_Job] = []
        with self._cond:
            for running in self._running:
                if job_id in (None, running.job_id):
                    running.cancel.set()
            for job in list(self._jobs):
                if job.job_id == job_id:
                    self._jobs.remove(job)
                    dropped.append(job)
        self._report_dropped(dropped)

    def _cancel_step_decodes(self, key: str) -> None:
        with self._cond:
            for decodes in self._step_decodes:
                if decodes.request.key == key:
                    decodes.cancel.set()
            self._cond.notify_all()

    def _cancel_all(self) -> None:
        with self._cond:
            dropped = list(self._jobs)
            self._jobs.clear()
            for job in self._running:
                job.cancel.set()
        self._report_dropped(dropped)
        self._post_queue()

    def _report_dropped(self, jobs: list[_Job]) -> None:
        for job in jobs:
            self.post(JobCancelled(job.job_id, job.request.version_id, 0))
        if jobs:
            self._post_queue()

    # ---- worker thread ----------------------------------------------------------------

    def _queue_snapshot(self) -> tuple[JobInfo, ...]:
        jobs = [JobInfo(j.job_id, j.label, True) for j in self._running]
        jobs += [JobInfo(j.job_id, j.label, False) for j in self._jobs]
        return tuple(jobs)

    def _post_queue(self) -> None:
        # Snapshot and post under the lock, so that snapshots arrive in the order taken.
        with self._cond:
            self.post(QueueChanged(self._queue_snapshot()))

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not (
                    self._model_request or self._has_side_requests() or self._jobs
                ):
                    self._cond.wait()
                if self._stopping:
                    return
                load, self._model_request = self._model_request, None
                jobs: list[_Job] = []
                if load is None and not self._has_side_requests():
                    jobs.append(self._jobs.popleft())
                    while jobs[0].batch is not None and self._jobs:
                        if self._jobs[0].batch != jobs[0].batch:
                            break
                        jobs.append(self._jobs.popleft())
                    self._running = list(jobs)
            if load is not None:
                self._ensure_model(load.ref, load.config, load.memory_saving)
                continue
            if not jobs:
                self._serve_side_requests()
                continue
            self._post_queue()
            try:
                if isinstance(jobs[0].request, Score):
                    self._run_score(jobs[0])
                else:
                    self._run_generations(jobs)
            finally:
                with self._cond:
                    self._running = []
                self._post_queue()

    def _ensure_model(self, ref: str, config: str = "", memory_saving: str | None = None) -> bool:
        """Load ``ref`` unless it is loaded with the memory savers asked for; a single file
        with ``config``, or with the config it was last given. ``memory_saving`` (a
        LoadModel's) applies to this load and every later one; None keeps the last."""
        if config:
            self._configs[ref] = config
        config = self._configs.get(ref, "")
        if memory_saving is not None:
            self._memory_saving = memory_saving
        saving = self._memory_saving
        held = (self._model_ref, self._model_config, self._model_saving)
        if self._model is not None and held == (ref, config, saving):
            return True
        self.post(ModelLoading(ref))
        try:
            args = (ref, config) if config else (ref,)
            model = self._load_model_fn(*args, **({"memory_saving": saving} if saving else {}))
            sampler = self._make_sampler_fn(model)
        except Exception as exc:
            if self._model is not None:  # the model held stays, and with it its savers
                self._memory_saving = self._model_saving
            self.post(ModelFailed(ref, one_sentence(exc)))
            return False
        self._model, self._model_ref, self._sampler = model, ref, sampler
        if hasattr(sampler, "frame_gate"):
            sampler.frame_gate = self._frame_wanted
        self._model_config, self._model_saving = config, saving
        from studio.engine.preview import describe_preview

        preview = describe_preview(model)
        description = f"{model.describe()} · preview: {preview}"
        budget = self._budget()
        self.post(
            ModelLoaded(
                ref,
                description,
                int(getattr(model, "size_factor", 8)),
                budget.native_size,
                budget.fixed_bytes,
                budget.bytes_per_pixel,
                budget.device_bytes,
                preview,
            )
        )
        # Fill the hash cache once, so exports name the weights without reading them.
        with contextlib.suppress(OSError):
            getattr(model, "model_hash", None)
        return True

    def _budget(self) -> Any:
        """The loaded model's SizeBudget; an unknown one (all zeros) for a model without one."""
        from studio.engine.memory import SizeBudget, budget_for

        try:
            return budget_for(self._model)
        except Exception:  # a fake or unusual model: nothing is warned about or refused
            return SizeBudget()

    def _has_side_requests(self) -> bool:
        return (
            bool(self._decode_requests)
            or self._forward_request is not None
            or self._prompt_request is not None
            or self._model_list_request is not None
            or bool(self._step_decodes)
        )

    def _serve_side_requests(self) -> None:
        """Serve the waiting decode, token-info and model-list requests, if any (latest wins),
        and one batch of the oldest DecodeSteps."""
        with self._cond:
            step_decodes = self._step_decodes[0] if self._step_decodes else None
            decodes = list(self._decode_requests.values())
            self._decode_requests.clear()
            forward, self._forward_request = self._forward_request, None
            prompts, self._prompt_request = self._prompt_request, None
            listing, self._model_list_request = self._model_list_request, None
        for decode in decodes:
            self._decode(decode)
        if forward is not None:
            self._forward(forward)
        if step_decodes is not None and self._decode_step_batch(step_decodes):
            with self._cond:
                self._step_decodes.remove(step_decodes)
        if prompts is not None and self._sampler is not None:
            for text in prompts.texts:
                try:
                    info = self._sampler.prompt_info(text)
                except Exception:
                    continue
                self.post(_prompt_info_message(text, info))
        if listing is not None:
            try:
                models = self._list_models_fn(listing.folders)
            except Exception:
                return
            self.post(ModelList(tuple((str(label), str(ref)) for label, ref in models)))

    def _decode(self, request: Decode) -> None:
        if self._sampler is None:
            self.post(DecodeFailed(request.key, "No model is loaded."))
            return
        try:
            checkpoint = self._load_checkpoint_fn(request.checkpoint)
            if request.which == "xt":
                latent = _unit_variance(checkpoint.latent, checkpoint.recipe.sampler, request.sigma)
            else:
                latent = checkpoint.x0_pred
            image = self._sampler.decode(latent)
        except Exception as exc:
            self.post(DecodeFailed(request.key, one_sentence(exc)))
            return
        self.post(Decoded(request.key, image))

    def _decode_step_batch(self, decodes: _StepDecodes) -> bool:
        """Decode the next batch of a DecodeSteps and post it; True when it has ended."""
        request, start = decodes.request, decodes.done
        total = len(request.checkpoints)

        def answer(**ending: Any) -> bool:
            self.post(StepsDecoded(request.key, start, (), start, total, **ending))
            return True

        if decodes.cancel.is_set():
            return answer(cancelled=True)
        if self._sampler is None:
            return answer(error="No model is loaded.")
        try:
            latents = []
            size = total
            for position in range(start, total):
                checkpoint = self._load_checkpoint_fn(request.checkpoints[position])
                if request.which == "xt":
                    sigma = request.sigmas[position] if position < len(request.sigmas) else None
                    latent = _unit_variance(checkpoint.latent, checkpoint.recipe.sampler, sigma)
                else:
                    latent = checkpoint.x0_pred
                latents.append(latent)
                if position == start:
                    size = self._sampler.decode_batch_size(latent)
                if len(latents) == size:
                    break
            images = self._sampler.decode_many(latents, cancel=decodes.cancel)
        except Exception as exc:
            return answer(error=one_sentence(exc))
        if images is None:
            return answer(cancelled=True)
        empty = np.zeros((0, 0, 3), np.uint8)
        failed = tuple(start + i for i, image in enumerate(images) if image is None)
        done = start + len(images)
        decodes.done = done
        images = tuple(empty if image is None else image for image in images)
        self.post(StepsDecoded(request.key, start, images, done, total, failed))
        return done >= total

    def _forward(self, request: Forward) -> None:
        if self._sampler is None:
            self.post(ForwardMade(request.key, (), "No model is loaded."))
            return
        try:
            frames = self._sampler.forward_previews(request.recipe, request.images)
        except Exception as exc:
            self.post(ForwardMade(request.key, (), one_sentence(exc)))
            return
        self.post(ForwardMade(request.key, tuple(frames)))

    def _run_generations(self, jobs: list[_Job]) -> None:
        """Start each job; run one alone, several (a GenerateBatch) as one UNet batch."""
        runs = [run for run in map(self._start_run, jobs) if run is not None]
        if len(runs) == 1:
            self._run_alone(runs[0])
        elif runs:
            self._run_together(runs)

    def _start_run(self, job: _Job) -> _Run | None:
        """Load the job's model, check its recipe and post JobStarted; None (JobFailed
        posted) when it cannot run."""
        request = job.request
        recipe = request.recipe
        try:
            if not self._ensure_model(recipe.model, getattr(recipe, "model_config", "")):
                raise RuntimeError(f"The model {recipe.model!r} could not be loaded.")
            recipe.validate(getattr(self._model, "size_factor", 8))
            refusal = self._budget().refusal(recipe.width, recipe.height)
            if refusal:
                raise RecipeError(refusal)
            start = None
            if isinstance(request, Resume):
                start = self._load_checkpoint_fn(request.checkpoint)
        except Exception as exc:
            self._fail(_Run(job, recipe, None, (), 0), exc)
            return None
        if start is not None:
            first = int(start.step_index) + 1
        elif getattr(recipe, "cross", None) is not None:
            first = recipe.cross.step_index + 1
        elif recipe.init_image:
            from studio.engine.init_pixels import start_index

            first = start_index(recipe.steps, recipe.strength)
        else:
            first = 0
        run = _Run(job, recipe, start, getattr(request, "images", ()), first)
        self.post(JobStarted(job.job_id, request.version_id, recipe, first, recipe.steps))
        return run

    def _run_alone(self, run: _Run) -> None:
        job, recipe = run.job, run.recipe
        try:
            if run.first >= recipe.steps:  # branching from the last step, or strength 0
                latent = None if run.start is None else run.start.latent
                image = self._result(recipe, latent, run.images, job.cancel)
                self.post(
                    JobFinished(
                        job.job_id, job.request.version_id, image, time.perf_counter() - run.began
                    )
                )
                return
            from_image = {"images": run.images} if recipe.init_image else {}
            for step in self._sampler.run(recipe, start=run.start, cancel=job.cancel, **from_image):
                if self._post_step(run, step):
                    break
            self._end(run)
        except Exception as exc:
            self._fail(run, exc)

    def _run_together(self, runs: list[_Run]) -> None:
        """The runs as one UNet batch, each ended as soon as it is cancelled or told to stop
        (the batch runs on without it), the rest decoded once the batch is done."""
        options: dict[str, Any] = {"cancels": [run.job.cancel for run in runs]}
        if any(run.recipe.init_image for run in runs):
            options["images"] = tuple(image for run in runs for image in run.images)
        if runs[0].start is not None:
            options["starts"] = [run.start for run in runs]
        try:
            steps = self._sampler.run_batch([run.recipe for run in runs], **options)
            for position, step in steps:
                run = runs[position]
                if not run.ended and self._post_step(run, step):
                    run.job.cancel.set()
                for other in runs:
                    if other.job.cancel.is_set() and not other.ended:
                        self._end(other)
        except Exception as exc:
            for run in runs:
                if not run.ended:
                    self._fail(run, exc)
            return
        for run in runs:
            if not run.ended:
                try:
                    self._end(run)
                except Exception as exc:
                    self._fail(run, exc)

    def _post_step(self, run: _Run, step: Any) -> bool:
        """Post the step as a StepMade (its checkpoint as bytes) and serve the side requests
        that wait; True when the run is to stop here (cancelled, or its ``stop_after``)."""
        run.steps_done += 1
        run.last = step
        self._keep_skipped(run, step)
        record = StepRecord(
            index=int(step.index),
            total=int(step.total),
            timestep=float(step.timestep),
            sigma=None if step.sigma is None else float(step.sigma),
            checkpoint=step.checkpoint.to_bytes(),
            preview_x0=step.preview_x0,
            preview_xt=step.preview_xt,
        )
        elapsed = time.perf_counter() - run.began
        request = run.job.request
        self.post(StepMade(run.job.job_id, request.version_id, record, elapsed, run.steps_done))
        self._serve_side_requests()
        return run.job.cancel.is_set() or record.index == getattr(request, "stop_after", None)

    def _end(self, run: _Run) -> None:
        """JobFinished with the result image when the run reached its last step and was not
        cancelled; otherwise JobCancelled (a partial version, resumable). Then the tiny
        previews of the steps the frame gate skipped (StepPreviews)."""
        job, last = run.job, run.last
        run.ended = True
        with self._cond:
            if job in self._running and len(self._running) > 1:
                self._running.remove(job)
                self.post(QueueChanged(self._queue_snapshot()))
        version_id = job.request.version_id
        complete = last is not None and int(last.index) == int(last.total) - 1
        ending: JobFinished | JobCancelled = JobCancelled(job.job_id, version_id, run.steps_done)
        if not job.cancel.is_set() and complete:
            image = self._result(run.recipe, last.latent, run.images, job.cancel)
            if image is not None:
                elapsed = time.perf_counter() - run.began
                ending = JobFinished(job.job_id, version_id, image, elapsed)
        self.post(ending)
        self._post_skipped_previews(run)

    def _fail(self, run: _Run, exc: Exception) -> None:
        run.ended = True
        if not _is_expected(exc):  # a bug: keep its traceback for the log
            traceback.print_exc()
        self.post(
            JobFailed(run.job.job_id, run.job.request.version_id, one_sentence(exc), run.steps_done)
        )
        self._post_skipped_previews(run)

    def _keep_skipped(self, run: _Run, step: Any) -> None:
        """Keep the x0-hat of a step the frame gate gave the linear map, for StepPreviews
        at the end of the run, while the run's kept latents stay under SKIPPED_LATENT_BYTES."""
        if not getattr(step, "tiny_preview_skipped", False):
            return
        latent = step.x0_pred
        size = latent.numel() * latent.element_size()
        if run.skipped_bytes + size > SKIPPED_LATENT_BYTES:
            return
        run.skipped_bytes += size
        run.skipped.append((int(step.index), latent.detach().clone()))

    def _post_skipped_previews(self, run: _Run) -> None:
        """The tiny decoder's previews of the steps it skipped during the run, in batches,
        as one StepPreviews (none when closing, or when the decode fails: the linear
        previews stay)."""
        skipped, run.skipped, run.skipped_bytes = run.skipped, [], 0
        if not skipped or self._stopping:
            return
        try:
            previews = self._sampler.tiny_previews([latent for _index, latent in skipped])
        except Exception:
            traceback.print_exc()
            return
        request = run.job.request
        indices = tuple(index for index, _latent in skipped)
        self.post(StepPreviews(run.job.job_id, request.version_id, indices, tuple(previews)))

    def _result(self, recipe: Any, latent: Any, images: Any, cancel: Any) -> Any:
        """The run's result image: composited with the init image when it started from one."""
        if recipe.init_image:
            return self._sampler.finish(recipe, latent, images, cancel=cancel)
        return self._sampler.decode(latent, cancel=cancel)

    def _run_score(self, job: _Job) -> None:
        """A Score job (see :mod:`studio.workers.score_job`); failures end it as JobFailed."""
        from studio.workers.score_job import run_score

        request = job.request
        try:
            if not self._ensure_model(request.model):
                raise RuntimeError(f"The model {request.model!r} could not be loaded.")
            run_score(
                request,
                self._model,
                job.cancel,
                self.post,
                self._load_checkpoint_fn,
                self._serve_side_requests,
            )
        except Exception as exc:
            if not _is_expected(exc):
                traceback.print_exc()
            self.post(JobFailed(request.job_id, request.version_id, one_sentence(exc), 0))


def _is_expected(exc: BaseException) -> bool:
    """Errors that already carry one sentence for the user (bad recipe, model, NaN, out of memory)."""
    from studio.engine.errors import EngineError
    from studio.engine.recipe import RecipeError

    return isinstance(exc, (EngineError, RecipeError))


def _unit_variance(latent: Any, sampler: str, sigma: float | None) -> Any:
    """Samplers that work in sigma space keep x_t = x0 + sigma * noise; scale it like a
    variance-preserving latent so the VAE sees values in its usual range."""
    if sigma is None or not math.isfinite(sigma):
        return latent
    from studio.engine.schedulers import sampler_spec

    if sampler_spec(sampler).sigma_space:
        return latent / math.sqrt(1.0 + sigma * sigma)
    return latent


def one_sentence(exc: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
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
    unknown = tuple(str(word) for word in (get("unknown_words", None) or ()))
    return PromptInfo(text, int(used), int(get("limit", 77) or 77), dropped, unknown)
