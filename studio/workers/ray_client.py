"""The Ray client: the same jobs as the in-process worker, on a pool of model actors.

``RayWorker`` is the second :class:`~studio.workers.client.WorkerClient`. It sends
each job to one :mod:`~studio.workers.ray_actor` (a LocalWorker in a Ray process,
one loaded model, one device) and relays what that actor streams back as the very
messages the in-process worker posts, so the session and the window do not change.

- **Pool.** One actor per GPU of the cluster (``num_gpus=1`` each), or one per CPU
  on a CPU cluster (``num_cpus=1``, one torch thread each), created when a job
  needs one and reused between jobs; a job prefers an idle actor that already
  holds its model, and an actor loads a model on demand.
- **Files.** Model files reach the actors by path: a folder or file must be at the
  same path on every node (a shared filesystem); the bundled model ships in each
  node's install. The actor checks the files as the window does, before loading.
- **Exactness.** An actor runs the engine the in-process worker runs, so a job gives
  the same pixels on the same kind of device with the same torch thread count and
  library versions. Noise is drawn on the CPU from the recipe.
- **Faults.** Cancel goes to the actor at once and stops its job within one step.
  When an actor dies mid-job, the job resumes on another actor from the last
  checkpoint that reached this client (or starts again if none had), with no second
  JobStarted and the step count carried on; the result equals the uninterrupted
  run's. A Score job starts again, and the rows it had reported are not reported
  twice. A cluster that cannot be reached raises :class:`ClusterError` (one
  sentence) from :func:`connect`.

Ray is imported only when a client connects, so the default install never needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from studio.engine.errors import EngineError
from studio.protocol import (
    Cancel,
    CancelAll,
    CancelDecodeSteps,
    Decode,
    DecodeSteps,
    Forward,
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
    Message,
    ModelFailed,
    ModelLoaded,
    ModelLoading,
    QueueChanged,
    Request,
    Resume,
    Score,
    Scored,
    ScoreProgress,
    StepMade,
    TokenInfo,
    from_wire,
    to_wire,
    unpack_step,
)
from studio.workers.client import WorkerClient
from studio.workers.local import one_sentence, request_label

LOCAL_ADDRESSES = ("", "local")
"""Addresses that start a Ray cluster on this machine; ``auto`` joins one started here."""
ACTOR_START_SECONDS = 60.0
"""How long a new actor may wait for a free GPU or CPU before its job fails."""
MAX_RESUMES = 3
"""How many lost actors one job survives."""
CONNECT_SECONDS = 5.0
"""How long an address may stay silent before it counts as unreachable."""


class ClusterError(EngineError):
    """The cluster cannot be reached or has no worker for a job: one sentence."""


def connect(address: str | None = None, local_cpus: int | None = None) -> bool:
    """Join the Ray cluster at ``address`` (None or "local": start one on this machine
    with ``local_cpus`` CPUs; "auto": the one already started here; ``HOST:6379`` or
    ``ray://HOST:10001``). True when this call started Ray in this process; when Ray is
    already initialised here, that cluster is used (an explicit address is still checked)."""
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "Ray is not installed; install the extra with: pip install 'noise-studio[ray]'."
        ) from None
    address = (address or "").strip()
    if address not in (*LOCAL_ADDRESSES, "auto"):
        _check_reachable(address)
    if ray.is_initialized():
        return False
    where = "on this machine" if address in LOCAL_ADDRESSES else f"at {address}"
    if address in LOCAL_ADDRESSES:
        options: dict[str, Any] = {"num_cpus": local_cpus, "include_dashboard": False}
    else:
        options = {"address": address}
    try:
        _on_ray_owner(ray.init, log_to_driver=False, **options)
    except Exception as exc:
        raise ClusterError(f"Cannot reach a Ray cluster {where}: {one_sentence(exc)}") from None
    return True


_ray_owner: ThreadPoolExecutor | None = None
_ray_owner_lock = threading.Lock()


def _on_ray_owner(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on the one thread of this process that starts and stops Ray, and wait.

    A cluster that ``ray.init`` starts here (its GCS and raylet processes) is killed
    when the *thread* that started it ends: Ray asks Linux to signal its children on
    the parent's death, and Linux counts a thread as the parent. So Ray is started on a
    thread that lives as long as the process, never on a short-lived connecting one."""
    global _ray_owner
    with _ray_owner_lock:
        if _ray_owner is None:
            _ray_owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ray-owner")
        owner = _ray_owner
    return owner.submit(fn, *args, **kwargs).result()


def _check_reachable(address: str) -> None:
    """Refuse a malformed or silent address in seconds, before Ray's own long retries."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(
            f"A Ray address looks like HOST:6379 or ray://HOST:10001, not {address!r}."
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except TimeoutError:
        raise ClusterError(
            f"Cannot reach a Ray cluster at {address}: no answer within {CONNECT_SECONDS:g} s."
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(f"Cannot reach a Ray cluster at {address}: {reason}.") from None


def pool_shape(workers: int | None = None) -> tuple[int, dict[str, float]]:
    """(actors in the pool, each actor's resources) for the connected cluster: one per GPU,
    else one per CPU; at most ``workers`` when given."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    size, each = (gpus, {"num_gpus": 1}) if gpus else (int(resources.get("CPU", 1)), {})
    each = {"num_cpus": 1, **each}
    if workers is not None:
        size = min(size, workers)
    return max(1, size), each


@dataclass
class _RemoteJob:
    """A job and what has reached the client of it, enough to carry it on elsewhere."""

    request: JobRequest
    cancelled: bool = False
    started: bool = False
    last_checkpoint: bytes | None = None
    steps_done: int = 0
    steps_before: int = 0
    elapsed_before: float = 0.0
    last_elapsed: float = 0.0
    items_scored: int = 0
    resumes: int = 0

    @property
    def model(self) -> str:
        return self.request.model if isinstance(self.request, Score) else self.request.recipe.model

    def continuation(self) -> JobRequest:
        """The request that carries this job on from its last checkpoint that arrived."""
        request = self.request
        if self.last_checkpoint is None or isinstance(request, Score):
            return request
        # The branch's fresh noise was mixed in at its first step; carrying on must not again.
        recipe = request.recipe
        if recipe.renoise_strength > 0.0:
            recipe = recipe.with_changes(renoise_strength=0.0)
        # Every other field the request shares with Resume (label, any input images) carries over.
        shared = {f.name for f in dataclasses.fields(Resume)} & {
            f.name for f in dataclasses.fields(request)
        }
        carried = {name: getattr(request, name) for name in shared}
        return Resume(**{**carried, "recipe": recipe, "checkpoint": self.last_checkpoint})


@dataclass(eq=False)
class _Actor:
    handle: Any
    pid: int
    model: str = ""
    saving: str = ""  # the memory savers last sent to it (LoadModel.memory_saving)
    job: _RemoteJob | None = None
    thread: threading.Thread | None = field(default=None, repr=False)


class RayWorker(WorkerClient):
    """Runs protocol jobs on a pool of Ray model actors; see the module docstring.

    ``address``: where the cluster is (see :func:`connect`); ignored when Ray is
    already initialised in this process. ``workers`` caps the pool; ``torch_threads``
    is each actor's thread count (part of exactness on CPU)."""

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        torch_threads: int = 1,
        actor_start_seconds: float = ACTOR_START_SECONDS,
    ) -> None:
        super().__init__()
        self._address = address
        self._workers = workers
        self._torch_threads = torch_threads
        self._actor_start_seconds = actor_start_seconds
        self._cond = threading.Condition(threading.RLock())
        self._waiting: deque[_RemoteJob] = deque()
        self._side: deque[Request] = deque()
        self._actors: list[_Actor] = []
        self._announced_model = ""
        self._loaded: dict[str, ModelLoaded] = {}
        self._memory_saving = ""  # the latest LoadModel's, for every actor's loads
        self._size = 1
        self._resources: dict[str, float] = {}
        self._owns_ray = False
        self._connected = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def remote(self) -> str:
        address = (self._address or "").strip()
        if address in LOCAL_ADDRESSES:
            return "a Ray cluster on this machine"
        if address == "auto":
            return "the Ray cluster started on this machine"
        return f"the Ray cluster at {address}"

    def connect(self) -> None:
        """Join the cluster (seconds; raises :class:`ClusterError`). Thread-safe; a client
        stopped while this ran leaves the cluster again."""
        with self._cond:
            if self._connected:
                return
        owns_ray = connect(self._address)
        shape = pool_shape(self._workers)
        with self._cond:
            self._owns_ray, self._connected = owns_ray, True
            self._size, self._resources = shape
            stopping = self._stopping
        if stopping:
            self._leave_ray()

    def start(self) -> None:
        """Connect unless :meth:`connect` did (raises :class:`ClusterError`) and begin
        dispatching the requests sent so far and from now on."""
        if self._thread is not None:
            return
        self.connect()
        self._thread = threading.Thread(target=self._dispatch, name="ray-dispatch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._cancel_all()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
        for actor in list(self._actors):
            self._retire(actor, deadline)
        self._leave_ray()
        return self._thread is None or not self._thread.is_alive()

    def _leave_ray(self) -> None:
        with self._cond:
            owns_ray, self._owns_ray = self._owns_ray, False
        if owns_ray:
            import ray

            _on_ray_owner(ray.shutdown)

    def take_waiting(self) -> list[Request]:
        with self._cond:
            taken = [*self._side, *(job.request for job in self._waiting)]
            self._side.clear()
            self._waiting.clear()
        if taken:
            self._post_queue()
        return taken

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def pool_size(self) -> int:
        return self._size

    def pool_pids(self) -> list[int]:
        """The process ids of the pool's actors (what a benchmark reads CPU time from)."""
        with self._cond:
            return [a.pid for a in self._actors]

    def actor_pids(self) -> dict[int, int]:
        """{job id: pid of the actor process running it} for the jobs running now."""
        with self._cond:
            return {a.job.request.job_id: a.pid for a in self._actors if a.job is not None}

    # ---- requests (thread-safe, never block) -------------------------------------------

    def send(self, request: Request) -> None:
        match request:
            case Generate() | Resume() | Score():
                with self._cond:
                    self._waiting.append(_RemoteJob(request))
                    self._cond.notify_all()
                self._post_queue()
            case GenerateBatch():
                # One job per actor here: each member runs alone, padded to its recipe's
                # batch, so it gives the bits the batch would have.
                with self._cond:
                    self._waiting.extend(_RemoteJob(job) for job in request.jobs)
                    self._cond.notify_all()
                self._post_queue()
            case Cancel():
                self._cancel(request.job_id)
            case CancelAll():
                self._cancel_all()
            case FrameShown():
                for actor in self._busy_actors():
                    actor.handle.send.remote(to_wire(request))
            case (
                LoadModel()
                | Decode()
                | DecodeSteps()
                | CancelDecodeSteps()
                | Forward()
                | TokenInfo()
                | ListModels()
            ):
                with self._cond:
                    if isinstance(request, LoadModel):
                        self._memory_saving = request.memory_saving
                    self._side.append(request)
                    self._cond.notify_all()
            case _:
                raise TypeError(f"{type(request).__name__} is not a worker request.")

    def _busy_actors(self) -> list[_Actor]:
        with self._cond:
            return [a for a in self._actors if a.job is not None]

    def _cancel(self, job_id: int | None) -> None:
        with self._cond:
            dropped = [j for j in self._waiting if j.request.job_id == job_id]
            for job in dropped:
                self._waiting.remove(job)
            running = [a for a in self._actors if a.job and job_id in (None, a.job.request.job_id)]
            for actor in running:
                self._cancel_running(actor)
            for job in dropped:
                self.post(JobCancelled(job.request.job_id, job.request.version_id, job.steps_done))
        if dropped:
            self._post_queue()

    def _cancel_all(self) -> None:
        with self._cond:
            dropped = list(self._waiting)
            self._waiting.clear()
            for actor in self._actors:
                if actor.job is not None:
                    self._cancel_running(actor)
            for job in dropped:
                self.post(JobCancelled(job.request.job_id, job.request.version_id, job.steps_done))
        self._post_queue()

    def _cancel_running(self, actor: _Actor) -> None:
        assert actor.job is not None
        actor.job.cancelled = True
        actor.handle.send.remote(to_wire(Cancel(actor.job.request.job_id)))

    # ---- dispatch ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand waiting jobs to free actors and side requests to a model's actor, in order."""
        while True:
            with self._cond:
                while not self._stopping and not (self._side or self._job_can_start()):
                    self._cond.wait()
                if self._stopping:
                    return
                side = self._side.popleft() if self._side else None
                job = None if side is not None else self._waiting.popleft()
            if side is not None:
                self._serve_side(side)
            else:
                self._start_job(job)

    def _job_can_start(self) -> bool:
        idle = any(a.job is None for a in self._actors)
        return bool(self._waiting) and (idle or len(self._actors) < self._size)

    def _start_job(self, job: _RemoteJob) -> None:
        try:
            actor = self._actor_for(job.model, idle=True)
        except ClusterError as exc:
            self.post(JobFailed(job.request.job_id, job.request.version_id, str(exc), 0))
            self._post_queue()
            return
        with self._cond:  # under the lock, so a Cancel is always sent after its job
            actor.job = job
            if actor.saving != self._memory_saving:
                recipe = getattr(job.request, "recipe", None)
                config = getattr(recipe, "model_config", "")
                actor.saving = self._memory_saving
                actor.handle.send.remote(to_wire(LoadModel(job.model, config, actor.saving)))
            actor.handle.send.remote(to_wire(job.continuation()))
        self._post_queue()

    def _serve_side(self, request: Request) -> None:
        model = request.ref if isinstance(request, LoadModel) else self._announced_model
        try:
            actor = self._actor_for(model, idle=False)
        except ClusterError as exc:
            if isinstance(request, LoadModel):
                self.post(ModelFailed(request.ref, str(exc)))
            return
        with self._cond:
            known = self._loaded.get(request.ref) if isinstance(request, LoadModel) else None
            if isinstance(request, LoadModel) and request.memory_saving != actor.saving:
                actor.saving = request.memory_saving
                known = None
                if request.ref == self._announced_model:
                    self._announced_model = ""  # it loads again: say so, as for a new model
            if known is not None and actor.model == request.ref:
                self._on_model_message(actor, known)  # held already: the actor says nothing
            actor.handle.send.remote(to_wire(request))

    def _actor_for(self, model: str, idle: bool) -> _Actor:
        """An actor holding ``model`` (idle if asked), else a new one while the pool has
        room, else any (idle) actor, which loads the model on demand."""
        with self._cond:
            free = [a for a in self._actors if a.job is None or not idle]
            holding = [a for a in free if a.model == model]
            if holding:
                return holding[0]
            if free and len(self._actors) >= self._size:
                return free[0]
        return self._new_actor()

    def _new_actor(self) -> _Actor:
        import ray

        from studio.workers.ray_actor import model_actor_class

        handle = model_actor_class().options(**self._resources).remote(self._torch_threads)
        try:
            pid = ray.get(handle.pid.remote(), timeout=self._actor_start_seconds)
        except ray.exceptions.GetTimeoutError:
            ray.kill(handle)
            needs = ", ".join(
                f"{v:g} {k.removeprefix('num_').upper()}" for k, v in self._resources.items()
            )
            raise ClusterError(
                f"The cluster has no free worker for a model (each needs {needs}); "
                f"none came within {self._actor_start_seconds:g} s."
            ) from None
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"A cluster worker could not start: {one_sentence(exc)}") from None
        actor = _Actor(handle, pid)
        stream = handle.messages.remote()
        actor.thread = threading.Thread(
            target=self._relay, args=(actor, stream), name=f"ray-relay-{pid}", daemon=True
        )
        with self._cond:
            self._actors.append(actor)
        actor.thread.start()
        return actor

    # ---- messages from the actors ------------------------------------------------------

    def _relay(self, actor: _Actor, stream: Any) -> None:
        """Post each message ``actor`` streams, as it arrives; carry its job on if it dies."""
        import ray

        try:
            for ref in stream:
                item = ray.get(ref)
                message = unpack_step(item) if isinstance(item, bytes) else from_wire(item)
                self._on_message(actor, message)
        except ray.exceptions.RayError as exc:
            self._lost(actor, exc)

    def _on_message(self, actor: _Actor, message: Message) -> None:
        with self._cond:
            job = actor.job
            match message:
                case ModelLoading() | ModelLoaded() | ModelFailed():
                    self._on_model_message(actor, message)
                case JobStarted() if job is not None:
                    if not job.started:
                        job.started = True
                        self.post(message)
                case StepMade() if job is not None:
                    if job.cancelled:  # in case the Cancel overtook its job
                        self._cancel_running(actor)
                    job.last_checkpoint = message.step.checkpoint
                    job.steps_done = job.steps_before + message.steps_done
                    job.last_elapsed = job.elapsed_before + message.elapsed
                    self.post(
                        dataclasses.replace(
                            message, steps_done=job.steps_done, elapsed=job.last_elapsed
                        )
                    )
                case ScoreProgress() if job is not None:
                    # A Score job starts again on another actor: its early rows come twice.
                    if message.done > job.items_scored:
                        job.items_scored = message.done
                        self.post(message)
                case JobFinished() | JobCancelled() | JobFailed() | Scored() if job is not None:
                    self.post(_carried_on(message, job))
                    actor.job = None
                    self._cond.notify_all()
                case _:
                    self.post(message)
        if isinstance(message, (JobFinished, JobCancelled, JobFailed, Scored)):
            self._post_queue()

    def _on_model_message(self, actor: _Actor, message: Message) -> None:
        """Tell the session about a model once, however many actors load it."""
        if isinstance(message, ModelLoaded):
            actor.model = message.ref
            self._loaded[message.ref] = message
        if isinstance(message, ModelFailed):
            self.post(message)
        elif message.ref != self._announced_model:
            if isinstance(message, ModelLoaded):
                self._announced_model = message.ref
            self.post(message)

    def _lost(self, actor: _Actor, exc: BaseException) -> None:
        """``actor`` died: carry its job on elsewhere from the last checkpoint that arrived."""
        with self._cond:
            if actor in self._actors:
                self._actors.remove(actor)
            job, actor.job = actor.job, None
            if job is None or self._stopping:
                self._cond.notify_all()
                return
            request = job.request
            if job.cancelled:
                self.post(JobCancelled(request.job_id, request.version_id, job.steps_done))
            elif job.resumes >= MAX_RESUMES:
                error = (
                    f"Cluster workers died {job.resumes + 1} times running this job "
                    f"({one_sentence(exc)}); the steps that arrived are kept."
                )
                self.post(JobFailed(request.job_id, request.version_id, error, job.steps_done))
            else:
                job.resumes += 1
                job.steps_before, job.elapsed_before = job.steps_done, job.last_elapsed
                self._waiting.appendleft(job)
            self._cond.notify_all()
        self._post_queue()

    def _retire(self, actor: _Actor, deadline: float) -> None:
        import ray

        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(actor.handle.stop.remote(), timeout=max(0.1, deadline - time.monotonic()))
        ray.kill(actor.handle)
        if actor.thread is not None:
            actor.thread.join(max(0.1, deadline - time.monotonic()))
        with self._cond:
            if actor in self._actors:
                self._actors.remove(actor)

    def _post_queue(self) -> None:
        with self._cond:
            running = [a.job for a in self._actors if a.job is not None]
            jobs = [JobInfo(j.request.job_id, request_label(j.request), True) for j in running]
            jobs += [
                JobInfo(j.request.job_id, request_label(j.request), False) for j in self._waiting
            ]
            self.post(QueueChanged(tuple(jobs)))


def _carried_on(message: Message, job: _RemoteJob) -> Message:
    """An end message with the steps and time of every actor the job ran on."""
    if isinstance(message, (JobCancelled, JobFailed)):
        return dataclasses.replace(message, steps_done=job.steps_before + message.steps_done)
    if isinstance(message, JobFinished):
        return dataclasses.replace(message, elapsed=job.elapsed_before + message.elapsed)
    return message
