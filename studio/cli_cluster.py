"""``--backend ray``: ``render``, ``brood`` and ``grid`` as jobs on a Ray cluster.

The commands build the same recipes as at home and send each one as a protocol job
to a :class:`~studio.workers.ray_client.RayWorker`; every image is the one the
in-process engine gives (same device kind, thread count and library versions). The
model is named by path, so it must be at the same path on every node; its hash for
the image metadata is read here, from the same shared path.
"""

from __future__ import annotations

import argparse
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.cli import CliError, _write_bytes, _write_image, _write_preview
from studio.protocol import (
    Generate,
    JobCancelled,
    JobFailed,
    JobFinished,
    LoadModel,
    Message,
    ModelFailed,
    ModelLoaded,
    Request,
    Resume,
    StepMade,
)

JOB_SECONDS = 24 * 3600.0


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--ray-address`` and ``--ray-workers`` (render, brood, grid)."""
    add = parser.add_argument
    add(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="where jobs run: in this process (default) or on a Ray cluster",
    )
    add(
        "--ray-address",
        metavar="ADDRESS",
        help="with --backend ray: 'local' (default: a cluster on this machine), 'auto', "
        "HOST:6379 or ray://HOST:10001",
    )
    add(
        "--ray-workers",
        type=int,
        metavar="N",
        help="with --backend ray: at most N model actors (default: one per GPU, else per CPU)",
    )


def uses_cluster(args: argparse.Namespace) -> bool:
    return getattr(args, "backend", "local") == "ray"


class _Inbox:
    """A blocking listener: the messages a client posts, waited on by the command."""

    def __init__(self, on_step: Callable[[StepMade], None] | None = None) -> None:
        self._cond = threading.Condition()
        self._ended: dict[int, Message] = {}
        self._model: Message | None = None
        self._on_step = on_step

    def __call__(self, message: Message) -> None:
        if isinstance(message, StepMade) and self._on_step is not None:
            self._on_step(message)
        with self._cond:
            if isinstance(message, (JobFinished, JobCancelled, JobFailed)):
                self._ended[message.job_id] = message
            elif isinstance(message, (ModelLoaded, ModelFailed)):
                self._model = message
            self._cond.notify_all()

    def model(self, ref: str, timeout: float) -> ModelLoaded:
        with self._cond:
            if not self._cond.wait_for(lambda: self._model is not None, timeout):
                raise CliError(f"The cluster did not load the model {ref!r} in {timeout:g} s.")
            message = self._model
        if isinstance(message, ModelFailed):
            raise CliError(f"The cluster could not load the model: {message.error}")
        assert isinstance(message, ModelLoaded)
        return message

    def images(self, job_ids: Sequence[int]) -> list[Any]:
        with self._cond:
            self._cond.wait_for(lambda: all(j in self._ended for j in job_ids), JOB_SECONDS)
            ended = [self._ended[j] for j in job_ids]
        for message in ended:
            if isinstance(message, JobFailed):
                raise CliError(f"A job failed on the cluster: {message.error}")
            if isinstance(message, JobCancelled):
                raise CliError("A job was cancelled on the cluster.")
        return [message.image for message in ended]


@dataclass(frozen=True)
class ClusterModel:
    """What the commands need of the model the cluster loaded."""

    size_factor: int
    native_size: int
    model_hash: str
    description: str


class ClusterSampler:
    """The cluster in place of a local Sampler: ``render_all`` runs recipes as jobs."""

    def __init__(self, args: argparse.Namespace, model_ref: str, model_config: str) -> None:
        from studio.workers.ray_client import RayWorker

        self._inbox = _Inbox(self._step)
        self._on_step: Callable[[StepMade], None] | None = None
        self.client = RayWorker(args.ray_address, workers=args.ray_workers)
        self.client.listen(self._inbox)
        self.client.start()
        self.client.send(LoadModel(model_ref, model_config))
        loaded = self._inbox.model(model_ref, timeout=600.0)
        self.model = ClusterModel(
            loaded.size_factor,
            loaded.native_size,
            _shared_model_hash(model_ref),
            loaded.description,
        )

    def _step(self, message: StepMade) -> None:
        if self._on_step is not None:
            self._on_step(message)

    def run_jobs(
        self, requests: Sequence[Request], on_step: Callable[[StepMade], None] | None = None
    ) -> list[Any]:
        """The final image of each job, in order; a failed job is a CliError."""
        self._on_step = on_step
        for request in requests:
            self.client.send(request)
        return self._inbox.images([r.job_id for r in requests])

    def render_all(self, recipes: Sequence[Any]) -> list[Any]:
        for recipe in recipes:
            recipe.validate(self.model.size_factor)
        jobs = [Generate(i, f"cell-{i}", r) for i, r in enumerate(recipes, start=1)]
        return self.run_jobs(jobs)

    def close(self) -> None:
        self.client.stop()


def cluster_sampler(args: argparse.Namespace, recipe: Any, keep_size: bool) -> tuple[Any, Any]:
    """A :class:`ClusterSampler` for ``recipe``'s model, and ``recipe`` at the model's
    native size unless ``keep_size`` (as :func:`studio.cli.load_sampler`)."""
    sampler = ClusterSampler(args, recipe.model, recipe.model_config)
    if not keep_size and sampler.model.native_size:
        size = sampler.model.native_size
        recipe = recipe.with_changes(width=size, height=size)
    return sampler, recipe


def _shared_model_hash(ref: str) -> str:
    """The model's short hash, read from the path the cluster shares ("" if not readable here)."""
    from studio.engine.model_hash import model_hash
    from studio.engine.model_refs import resolve

    try:
        return model_hash(resolve(ref))
    except Exception:  # not on this machine's filesystem: the image metadata goes without it
        return ""


def render_on_cluster(
    args: argparse.Namespace,
    recipe: Any,
    start: bytes | None,
    checkpoints: dict[int, Path],
    keep_size: bool,
    images: tuple[Any, ...] = (),
) -> dict[str, Any]:
    """``render --backend ray``: one job, its steps written as they stream in; ``images``
    are the pixels an image-to-image or inpaint recipe names."""
    started = time.perf_counter()
    sampler, recipe = cluster_sampler(args, recipe, keep_size)
    try:
        recipe.validate(sampler.model.size_factor)
        if args.every_step is not None:
            args.every_step.mkdir(parents=True, exist_ok=True)
        steps_run = 0

        def on_step(message: StepMade) -> None:
            nonlocal steps_run
            steps_run += 1
            step = message.step
            if step.index in checkpoints:
                _write_bytes(checkpoints[step.index], step.checkpoint)
            if args.every_step is not None:
                preview = step.preview_x0 if args.preview == "x0" else step.preview_xt
                _write_preview(args.every_step / f"step_{step.index + 1:04d}.png", preview, recipe)

        job = (
            Resume(1, "render", recipe, start, images=images)
            if start
            else Generate(1, "render", recipe, images=images)
        )
        (image,) = sampler.run_jobs([job], on_step)
    finally:
        sampler.close()
    if args.out is not None:
        _write_image(args.out, image, recipe, sampler.model.model_hash)
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "steps_run": steps_run,
        "steps": recipe.steps,
        "backend": "ray",
        "device": sampler.model.description,
        "model": recipe.model,
        "model_hash": sampler.model.model_hash,
        "sha256": hashlib.sha256(image.tobytes()).hexdigest(),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "out": str(args.out) if args.out else None,
        "recipe": recipe.to_dict(),
    }
