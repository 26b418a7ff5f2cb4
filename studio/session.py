"""The user's open work, without widgets: the document, the worker and the jobs in flight.

A :class:`Session` owns the version tree, the layer stack, the canvas mask, the undo stack, the
project file it is bound to (set by the project controller), the worker client
and the jobs in flight. It turns worker messages into document changes, in one
switch (:meth:`Session.handle`), and keeps a :class:`ViewState` that the
timeline, the canvas and the compare view follow, the way napari's ``Dims``
owns a slider's point. Features (export, import, the project menu, broods and
grids) receive the session, never the window, so branching, resuming and many
jobs at once can be tested without widgets.

Threading: everything here runs on the UI thread. The worker client's messages
arrive through :class:`~studio.workers.qt.MessageChannel` (queued), and
nothing here waits on the worker or on disk.

Display rule: the canvas shows the current version at the view's position. A
finished version's last step shows its full decode; any other step shows its
stored preview at once and a full decode once the timeline settles
(:meth:`Session.request_full_decode`). During a run only the newest frame is
drawn: ``frame_changed`` is coalesced to one per event-loop pass, while every
step is stored in the tree.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from studio.brood import DEFAULT_CHILDREN, DEFAULT_DOSE, BroodOrigins
from studio.document.canvas_mask import CanvasMask
from studio.document.commands import AddVersionCommand, DeleteVersionCommand, RenameVersionCommand
from studio.document.layers import LayerStack
from studio.document.project import Project
from studio.document.scores import VersionScores
from studio.document.versions import StepRef, Version, VersionTree, thumbnail_of
from studio.engine import init_pixels
from studio.engine.batching import DEFAULT_BATCH, batch_groups, batch_key, with_batches
from studio.engine.breeding import brood_of, cross_at
from studio.engine.memory import SizeBudget
from studio.engine.plugins import PluginSpec, plugin_setting
from studio.engine.recipe import BUNDLED_MODEL, Recipe, RecipeError
from studio.forward_process import ForwardFrames, forward_caption, forward_count, forward_recipe
from studio.init_images import InitImagePool
from studio.protocol import (
    Cancel,
    CancelAll,
    Decode,
    Decoded,
    DecodeKey,
    Forward,
    ForwardMade,
    FrameShown,
    Generate,
    GenerateBatch,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ListModels,
    LoadModel,
    Message,
    ModelFailed,
    ModelLoaded,
    ModelLoading,
    Resume,
    Score,
    Scored,
    ScoreProgress,
    StepMade,
    StepPreviews,
    StepRecord,
    TokenInfo,
    job_label,
)
from studio.scores import TreeScores, score_groups
from studio.workers.client import WorkerClient
from studio.workers.qt import MessageChannel

DECODE_CACHE = 48


@dataclass(frozen=True)
class BranchTarget:
    """Where a branch resumes: after step ``step_index`` (0-based) of version ``version_id``."""

    version_id: str
    step_index: int


@dataclass
class Job:
    """A job in flight and the version it feeds."""

    job_id: int
    version_id: str
    recipe: Recipe
    branch: BranchTarget | None = None
    started: bool = False
    failed: bool = False


@dataclass
class ScoreJob:
    """A Score job in flight: the versions it scores and how many are done."""

    job_id: int
    version_ids: tuple[str, ...]
    done: int = 0
    plugin_settings: dict[str, str] = field(default_factory=dict)
    """What produced each plug-in's values (name → :func:`plugin_setting`)."""


@dataclass(frozen=True)
class Frame:
    """What the version view draws: an image at the recipe's size, and its caption."""

    image: np.ndarray | None
    size: tuple[int, int] | None
    caption: str
    step: StepRecord | None = None
    quality: str = ""


@dataclass(frozen=True)
class Progress:
    value: int
    total: int
    rate: float
    eta: float


@dataclass
class ModelState:
    """The model the worker holds, as far as the session knows."""

    ref: str = BUNDLED_MODEL
    config: str = ""  # a single-file model's config folder
    loaded: bool = False
    description: str = ""
    size_factor: int = 8
    budget: SizeBudget = field(default_factory=SizeBudget)
    held: tuple[str, str] | None = None  # (ref, description) of the last model that loaded
    folders: tuple[str, ...] = field(default_factory=tuple)
    memory_saving: str = ""  # the savers every load asks for (LoadModel.memory_saving)


class ViewState(QObject):
    """What the version view shows: the current version, the timeline position, the x_t
    toggle and the compare pair. Setting a field emits its signal only on a change."""

    version_changed = Signal(object)  # str | None
    position_changed = Signal(int)
    static_changed = Signal(bool)
    compare_changed = Signal(object)  # tuple[str, str] | tuple[()]
    canvas_shown_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.version_id: str | None = None
        self.position = 0
        self.static = False
        self.compare: tuple[str, str] | tuple[()] = ()
        self.compare_side = 0  # which of the pair A/B shows alone: 0 for A (and side by side)
        self.canvas_shown = False

    def set_canvas_shown(self, shown: bool) -> None:
        """The layered canvas is on view instead of the version (or the compare pair)."""
        if shown != self.canvas_shown:
            self.canvas_shown = shown
            self.canvas_shown_changed.emit(shown)

    def set_version(self, version_id: str | None) -> None:
        if version_id != self.version_id:
            self.version_id = version_id
            self.version_changed.emit(version_id)

    def set_position(self, position: int) -> None:
        if position != self.position:
            self.position = position
            self.position_changed.emit(position)

    def set_static(self, static: bool) -> None:
        if static != self.static:
            self.static = static
            self.static_changed.emit(static)

    def set_compare(self, pair: tuple[str, str] | tuple[()]) -> None:
        if pair:
            self.set_canvas_shown(False)
        if pair != self.compare:
            self.compare, self.compare_side = pair, 0
            self.compare_changed.emit(pair)

    def set_compare_side(self, side: int) -> None:
        """B (1) is on view alone in A/B mode, else A (0): what copy and export take."""
        self.compare_side = side


class Session(QObject):
    """See the module docstring.

    Signals, all on the UI thread:

    - ``message_handled(message)``: after the session acted on a worker message;
      views and tests listen here rather than to the worker.
    - ``trajectory_reset()``: the shown trajectory changed wholesale (another
      version, or the x_t toggle); ``step_added(index, thumbnail)``: it grew by one;
      ``thumbnails_read({position: thumbnail})``: previews :meth:`thumbnails` left to the
      project's preview thread have been read.
    - ``frame_changed()``: :meth:`frame` has something new (coalesced).
    - ``progress_changed(Progress | None)``, ``status(text, ms)``, ``error(text | None)``.
    - ``cancelling(job_id | None)``: a cancel was asked (None: the running job), before
      the worker confirms it, so views can say so at once.
    - ``scores_changed()``: :attr:`scores` (version id → VersionScores, read from the
      tree, which the project stores) has new entries;
      ``score_progress((done, total) | None)``: items scored of the Score jobs in
      flight (None: none left).
    """

    message_handled = Signal(object)
    trajectory_reset = Signal()
    step_added = Signal(int, object)
    thumbnails_read = Signal(object)
    hover_decoded = Signal(int, object)  # timeline position, uint8 full decode
    frame_changed = Signal()
    progress_changed = Signal(object)
    status = Signal(str, int)
    error = Signal(object)
    cancelling = Signal(object)
    scores_changed = Signal()
    score_progress = Signal(object)

    def __init__(
        self,
        client: WorkerClient,
        model_ref: str = BUNDLED_MODEL,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.tree = VersionTree(self)
        self.origins = BroodOrigins(self.tree, self)
        self.layers = LayerStack(parent=self)
        self.mask = CanvasMask(self.layers, self)
        self.undo_stack = QUndoStack(self)
        self.project: Project | None = None
        self.client = client
        self.channel = MessageChannel(client, self)
        self.channel.received.connect(self.handle)
        self.view = ViewState(self)
        self.model = ModelState(ref=model_ref)
        self.jobs: dict[int, Job] = {}
        self.failed_ids: set[str] = set()
        self.interrupted_ids: set[str] = set()
        self.scores = TreeScores(self.tree)
        self.score_jobs: dict[int, ScoreJob] = {}
        self.batch_size = DEFAULT_BATCH
        """Most jobs of a brood, grid or search per UNet batch (the window's setting)."""
        self.init_images = InitImagePool(lambda: self.project.store if self.project else None)
        self._job_ids = itertools.count(1)
        self._trajectory: list[StepRef] = []
        self._forward = 0  # forward frames before the stored steps (see studio.forward_process)
        self.forward_frames = ForwardFrames()
        self._decoded: OrderedDict[DecodeKey, np.ndarray] = OrderedDict()
        self._shown_key: DecodeKey | None = None
        self._hover: tuple[DecodeKey, int] | None = None  # the hover popup's decode, position
        self._closing = False
        self._frame_timer = QTimer(self, singleShot=True, interval=0)
        self._frame_timer.timeout.connect(self._draw_newest_step)

        self.view.position_changed.connect(self._frame_now)
        self.view.static_changed.connect(self._on_static_changed)
        self.tree.version_removed.connect(self._on_version_removed)
        self.tree.version_added.connect(self._on_version_added)
        self.tree.version_renamed.connect(
            lambda vid, _name: vid == self.view.version_id and self._frame_now()
        )

    # ---- the worker ----------------------------------------------------------------------

    def start(self, folders: tuple[str, ...] = ()) -> None:
        """Start the worker and load the chosen model in the background."""
        self.client.start()
        self.model.loaded = False
        self.model.folders = tuple(folders)
        self.client.send(LoadModel(self.model.ref, self.model.config, self.model.memory_saving))
        self.client.send(ListModels(self.model.folders))

    def replace_client(self, client: WorkerClient) -> None:
        """Serve jobs from ``client`` instead (then :meth:`start` it), with no job in flight:
        the window's fallback from a cluster it cannot reach, or a new backend setting. The
        replaced client's messages are dropped from now on; stopping it is the caller's."""
        self.client.listen(_ignore)
        self.channel.deleteLater()
        self.client = client
        self.channel = MessageChannel(client, self)
        self.channel.received.connect(self.handle)

    def load_model(self, ref: str, config: str = "") -> None:
        """Load ``ref`` (a single file with its ``config`` folder) unless it is the model now."""
        if ref != self.model.ref or config != self.model.config:
            self.model.ref, self.model.config = ref, config
            self.client.send(LoadModel(ref, config, self.model.memory_saving))

    def set_memory_saving(self, text: str) -> None:
        """Load models with the memory savers ``text`` names (``MemorySaving.parse``'s
        format; "" leaves each to the worker's environment or automatic) from now on, and
        load the current model again with them (once the job running now has ended)."""
        if text != self.model.memory_saving:
            self.model.memory_saving = text
            self.client.send(LoadModel(self.model.ref, self.model.config, text))

    def list_models(self, folders: tuple[str, ...]) -> None:
        self.model.folders = tuple(folders)
        self.client.send(ListModels(self.model.folders))

    def request_tokens(self, *texts: str) -> None:
        if self.model.loaded:
            self.client.send(TokenInfo(tuple(texts)))

    @property
    def closing(self) -> bool:
        """True once :meth:`shutdown` was called: no message is handled any more."""
        return self._closing

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop handling messages, cancel every job and join the worker (bounded, and only
        waited for once: a second call says whether the worker has ended since)."""
        if self._closing:
            return not self.client.is_running
        self._closing = True
        self._frame_timer.stop()
        return self.client.stop(timeout=timeout)

    # ---- jobs ----------------------------------------------------------------------------

    def generate(
        self, recipe: Recipe, branch: BranchTarget | None = None, stop_after: int | None = None
    ) -> int:
        """Send a job for ``recipe`` (resumed from ``branch`` when given); returns its id.

        A branch's recipe gets its lineage (the parent version's recipe, itself maybe a
        branch, and the step), so it reproduces from its recipe alone. The version it
        feeds appears in the tree when the job starts. With ``stop_after`` (a step index)
        a new run ends there, partial and resumable."""
        job, request = self._job_request(recipe, branch, stop_after)
        self.client.send(request)
        return job.job_id

    def generate_many(self, recipes: Sequence[Recipe], stop_after: int | None = None) -> list[int]:
        """Send one job per recipe, as :meth:`generate` does, letting them share UNet
        batches (a brood's children, a grid's cells, a search's candidates); returns the
        job ids in the order of ``recipes``.

        Each recipe records its ``batch`` (:attr:`batch_size` at most, see
        ``batching.with_batches``), so it reproduces alone; the recipes of one batch go
        as one GenerateBatch. A client that cannot batch gets them at batch 1."""
        size = self.batch_size if self.client.batches else 1
        recipes = with_batches(recipes, size)
        pairs = [self._job_request(recipe, None, stop_after) for recipe in recipes]
        self._send_in_batches([request for _, request in pairs], batch_groups(recipes))
        return [job.job_id for job, _ in pairs]

    def _job_request(
        self, recipe: Recipe, branch: BranchTarget | None, stop_after: int | None
    ) -> tuple[Job, Generate | Resume]:
        """A new job for ``recipe`` (a branch of ``branch`` when given), kept in :attr:`jobs`,
        and the request that runs it."""
        if branch is not None:
            parent = self.tree.get(branch.version_id).recipe
            recipe = recipe.branched_from(parent, branch.step_index)
        images = self.init_images.for_recipe(recipe)
        job = Job(next(self._job_ids), uuid.uuid4().hex, recipe, branch)
        label = job_label(recipe)
        if branch is None:
            request: Generate | Resume = Generate(
                job.job_id, job.version_id, recipe, label, images, stop_after
            )
        else:
            checkpoint = self.tree.step(branch.version_id, branch.step_index).checkpoint
            request = Resume(job.job_id, job.version_id, recipe, checkpoint, label, images)
        self.jobs[job.job_id] = job
        return job, request

    def _send_in_batches(
        self, requests: Sequence[Generate | Resume], groups: Sequence[Sequence[int]]
    ) -> None:
        for group in groups:
            if len(group) == 1:
                self.client.send(requests[group[0]])
            else:
                self.client.send(GenerateBatch(tuple(requests[i] for i in group)))

    def generate_from_layer(
        self, layer_id: str, recipe: Recipe, strength: float, mask: np.ndarray | None = None
    ) -> int:
        """Image-to-image from a layer's pixels at ``strength`` (inpainting inside ``mask``,
        255 repaints), at the layer's size, as a new root version; returns the job id.
        Raises RecipeError (nothing sent) when the recipe cannot run."""
        pixels = self.layers.layer(layer_id).pixels
        height, width = pixels.shape[:2]
        if mask is not None and mask.shape[:2] != (height, width):
            raise RecipeError(
                f"The mask is {mask.shape[1]}×{mask.shape[0]} pixels but the layer is "
                f"{width}×{height}."
            )
        return self._generate_from(pixels, recipe, strength, mask)

    def outpaint(self, recipe: Recipe, strength: float = 1.0) -> int:
        """Fill what the canvas's composite leaves transparent (an extended canvas's new
        area) as an inpaint of the composite, its mask feathered into the new area
        (``init_pixels.outpaint_images``): the painted pixels stay exact in the result.
        Returns the job id; raises RecipeError (nothing sent) when there is nothing to fill."""
        composite = self.layers.composite_rgba()
        known = composite[..., 3] > 0
        if not known.any():
            raise RecipeError("The canvas is empty: add a version or an image to it first.")
        if known.all():
            raise RecipeError(
                "The canvas has no empty area to fill: extend it first (Layer ▸ Extend canvas…)."
            )
        image, mask = init_pixels.outpaint_images(init_pixels.rgb_of(composite), known)
        return self._generate_from(image, recipe, strength, mask)

    def _generate_from(
        self, pixels: np.ndarray, recipe: Recipe, strength: float, mask: np.ndarray | None
    ) -> int:
        height, width = pixels.shape[:2]
        changes = {"init_image": self.init_images.keep(pixels, "image"), "strength": strength}
        changes["mask"] = self.init_images.keep(mask, "mask") if mask is not None else ""
        recipe = recipe.with_changes(width=width, height=height, lineage=(), **changes)
        recipe.validate(self.model.size_factor)
        return self.generate(recipe)

    def breed(
        self,
        parent_ids: Sequence[str],
        children: int = DEFAULT_CHILDREN,
        dose: float = DEFAULT_DOSE,
        brood_seed: int | None = None,
        mix_prompts: bool = True,
    ) -> list[str]:
        """Send one job per child of ``parent_ids`` (crossed with equal weights, each child
        mutated by ``dose`` of noise whose seed derives from ``brood_seed`` and its index,
        see ``breeding.brood_of``), in UNet batches (:meth:`generate_many`); returns the
        children's version ids, in order. Parents' differing prompts are mixed with the
        same weights unless ``mix_prompts`` is False (then the first parent's prompt).

        Each child's parents (equal weights) are recorded in :attr:`origins` before its
        version appears, and the version carries them (``Version.bred_from``).
        Raises RecipeError (nothing sent) when the children's recipe cannot run."""
        parents = [self.tree.get(version_id) for version_id in parent_ids]
        seed = secrets.randbits(64) if brood_seed is None else brood_seed
        recipes = brood_of([p.recipe for p in parents], children, dose, seed, mix_prompts)
        for recipe in recipes:
            recipe.validate(self.model.size_factor)
        bred_from = tuple((p.id, 1.0) for p in parents)
        version_ids = [self.jobs[job_id].version_id for job_id in self.generate_many(recipes)]
        for version_id in version_ids:
            self.origins.record(version_id, bred_from)
        return version_ids

    def cross(
        self,
        first_id: str,
        second_id: str,
        step_index: int,
        dose: float = DEFAULT_DOSE,
        seed: int | None = None,
        mix_prompts: bool = True,
    ) -> str:
        """Send a job for the child of two versions crossed after step ``step_index``
        (0-based): their latents there slerped with equal weights and re-noised by ``dose``
        of ``seed``'s noise (see ``breeding.cross_at``), running on to the end on the mix
        of their prompts unless ``mix_prompts`` is False; returns the child's version id.

        The child's recipe carries both parents' recipes, so the worker replays them to the
        step and it reproduces from its recipe alone; both parents are recorded as for a
        brood (``Version.bred_from``). Raises RecipeError (nothing sent) when they cannot
        cross."""
        first, second = self.tree.get(first_id), self.tree.get(second_id)
        noise_seed = secrets.randbits(64) if seed is None else seed
        recipe = cross_at(
            first.recipe, second.recipe, step_index, dose, noise_seed, mix_prompts=mix_prompts
        )
        recipe.validate(self.model.size_factor)
        job = self.jobs[self.generate(recipe)]
        self.origins.record(job.version_id, ((first.id, 1.0), (second.id, 1.0)))
        return job.version_id

    def score(
        self,
        version_ids: Sequence[str],
        timesteps: int = 8,
        noises: int = 2,
        plugins: Sequence[PluginSpec] = (),
    ) -> list[int]:
        """Send Score jobs for ``version_ids`` (one per prompt and model, usually one),
        keyed by version id; returns the job ids (none when nothing can be scored).

        A run costs about ``timesteps × noises × 2`` UNet evaluations per version. Results
        land in :attr:`scores` when each job's ``Scored`` arrives. ``plugins`` (local
        scorer plug-ins) add their values to each version's scores, stored with what
        produced them; a version keeps the values of plug-ins not named this time."""
        plugins = tuple(plugins)
        settings = {spec.kind: plugin_setting(spec) for spec in plugins}
        job_ids = []
        for group in score_groups(self.tree, version_ids):
            job = ScoreJob(next(self._job_ids), group.version_ids, plugin_settings=settings)
            count = len(group.items)
            label = f"score {count} version{'s' if count != 1 else ''}"
            request = Score(
                job.job_id,
                group.prompt,
                group.items,
                group.version_ids,
                model=group.model,
                timesteps=timesteps,
                noises=noises,
                label=label,
                plugins=plugins,
            )
            self.score_jobs[job.job_id] = job
            self.client.send(request)
            job_ids.append(job.job_id)
        if job_ids:
            self._emit_score_progress()
        return job_ids

    def cancel(self, job_id: int | None = None) -> None:
        self.client.send(Cancel(job_id))
        if self.jobs and (job_id is None or job_id in self.jobs):
            self.status.emit("Cancelling…", 0)
            self.cancelling.emit(job_id)

    def cancel_all(self) -> None:
        self.client.send(CancelAll())
        if self.jobs:
            self.status.emit("Cancelling all jobs…", 0)
            for job_id in list(self.jobs):
                self.cancelling.emit(job_id)

    def job_for(self, version_id: str) -> Job | None:
        return next((j for j in self.jobs.values() if j.version_id == version_id), None)

    def resume(self, version_id: str) -> int | None:
        """Continue a stopped version exactly from its last stored step, as an unchanged branch.

        The new version is a child, so the stopped one stays as it was (and undo removes
        only the continuation); its result equals an uninterrupted run's."""
        return self.resume_many([version_id])[0]

    def resume_many(self, version_ids: Sequence[str]) -> list[int | None]:
        """:meth:`resume` each version; stopped versions of one batch (a search's
        candidates) stopped after the same step resume together as one UNet batch, in
        the batch their recipes record. Returns the job ids (None: nothing to resume)."""
        job_ids: list[int | None] = []
        requests: list[Generate | Resume] = []
        keys: dict[tuple, list[int]] = {}
        for version_id in version_ids:
            version = self.tree.get(version_id) if version_id in self.tree else None
            if (
                version is None
                or not version.step_indices
                or version.step_indices[-1] >= version.recipe.steps - 1
            ):
                job_ids.append(None)
                continue
            last = version.step_indices[-1]
            job, request = self._job_request(version.recipe, BranchTarget(version.id, last), None)
            job_ids.append(job.job_id)
            solo = version.recipe.batch == 1 or not self.client.batches
            key = (len(requests),) if solo else (batch_key(version.recipe), last)
            keys.setdefault(key, []).append(len(requests))
            requests.append(request)
        groups = [
            members[start : start + requests[members[0]].recipe.batch]
            for members in keys.values()
            for start in range(0, len(members), requests[members[0]].recipe.batch)
        ]
        self._send_in_batches(requests, groups)
        return job_ids

    # ---- edits ---------------------------------------------------------------------------

    def rename_version(self, version_id: str, name: str) -> None:
        if version_id in self.tree and name and name != self.tree.get(version_id).name:
            self.undo_stack.push(RenameVersionCommand(self.tree, version_id, name))

    def delete_version(self, version_id: str) -> None:
        """Delete a version and its branches (one undo step); their running jobs are cancelled."""
        if version_id not in self.tree:
            return
        doomed = {version_id, *(v.id for v in self.tree.descendants(version_id))}
        for job in list(self.jobs.values()):
            if job.version_id in doomed:
                self.cancel(job.job_id)
        self.undo_stack.push(DeleteVersionCommand(self.tree, version_id))

    # ---- worker messages -------------------------------------------------------------------

    def handle(self, message: Message) -> None:
        """The one switch over the worker's typed messages."""
        if self._closing:
            return
        match message:
            case JobCancelled() | JobFailed() if message.job_id in self.score_jobs:
                self._end_score_job(message)
            case ScoreProgress():
                if message.job_id in self.score_jobs:
                    self.score_jobs[message.job_id].done = message.done
                    self._emit_score_progress()
            case Scored():
                self._on_scored(message)
            case StepMade():
                self._on_step(message)
            case StepPreviews():
                self._on_step_previews(message)
            case JobStarted():
                self._on_started(message)
            case JobFinished():
                self._on_finished(message)
            case JobCancelled():
                self._end_job(message.job_id, f"Cancelled after {message.steps_done} steps.")
            case JobFailed():
                self.error.emit(message.error)
                job = self.jobs.get(message.job_id)
                if job is not None:
                    job.failed = True
                    self.failed_ids.add(job.version_id)
                self._end_job(message.job_id, f"Failed: {message.error}")
            case Decoded():
                self._decoded[message.key] = message.image
                while len(self._decoded) > DECODE_CACHE:
                    self._decoded.popitem(last=False)
                if self._hover is not None and self._hover[0] == message.key:
                    self.hover_decoded.emit(self._hover[1], message.image)
                    self._hover = None
                if message.key == self._shown_key:
                    self._frame_now()
            case ModelLoading():
                self.model.loaded = False
            case ForwardMade():
                if message.frames:
                    self.forward_frames.keep(message.key, message.frames)
                elif message.error:
                    self.status.emit(f"The forward frames could not be made: {message.error}", 8000)
                if message.key == self.view.version_id and message.frames:
                    self.trajectory_reset.emit()
                    self._frame_now()
            case ModelLoaded():
                self.model.loaded = True
                self.model.held = (message.ref, message.description)
                self.model.description = message.description
                self.model.size_factor = message.size_factor
                self.model.budget = SizeBudget(
                    message.native_size,
                    message.fixed_bytes,
                    message.bytes_per_pixel,
                    message.device_bytes,
                )
                self._request_forward()
            case ModelFailed():
                # The worker keeps the model it had: pick it again, so the next job uses it.
                self.status.emit(message.error, 10000)
                self.error.emit(message.error)
                if self.model.held is not None:
                    self.model.ref, self.model.description = self.model.held
                    self.model.loaded = True
        self.message_handled.emit(message)

    def _on_started(self, message: JobStarted) -> None:
        job = self.jobs.get(message.job_id)
        if job is None:
            return
        job.started = True
        parent_id = branch_step = None
        if job.branch is not None and job.branch.version_id in self.tree:
            parent_id, branch_step = job.branch.version_id, job.branch.step_index
        version = self.tree.new_version(
            message.recipe,
            parent_id,
            branch_step,
            version_id=job.version_id,
            bred_from=self.origins.pending(job.version_id),
        )
        self.tree.add(version)
        self.progress_changed.emit(Progress(message.first_step, message.total_steps, 0.0, 0.0))
        self.status.emit(f"Generating {version.name}…", 0)
        self.show_version(version.id)

    def _on_step(self, message: StepMade) -> None:
        job = self.jobs.get(message.job_id)
        if job is None:
            return
        if job.version_id not in self.tree:  # deleted (or undone) while generating
            self.cancel(message.job_id)
            return
        step = message.step
        self.tree.append_step(job.version_id, step)
        if job.version_id == self.view.version_id:
            at_end = self.view.position >= self.last_position()
            self._trajectory.append(StepRef(job.version_id, step.index))
            self.step_added.emit(step.index, self._thumbnail(step))
            if at_end:
                self.view.set_position(self.last_position())
                self._frame_timer.start()  # coalesced: one repaint for a burst of steps
        rate = message.steps_done / message.elapsed if message.elapsed > 0 else 0.0
        remaining = step.total - step.index - 1
        eta = remaining / rate if rate > 0 else 0.0
        self.progress_changed.emit(Progress(step.index + 1, step.total, rate, eta))

    def _on_step_previews(self, message: StepPreviews) -> None:
        """Steps that were stored with the linear preview get the tiny decoder's (in the
        tree, and through the project in the file); the filmstrip shows them at once."""
        if message.version_id not in self.tree:
            return
        previews = dict(zip(message.indices, message.previews, strict=True))
        self.tree.replace_previews(message.version_id, previews)
        if self.view.static:
            return
        shown = {
            position: thumbnail_of(previews[ref.index])
            for position, ref in enumerate(self._trajectory, start=self._forward)
            if ref.owner_id == message.version_id and ref.index in previews
        }
        if shown:
            self.thumbnails_read.emit(shown)
            self._frame_now()

    def _on_finished(self, message: JobFinished) -> None:
        job = self.jobs.pop(message.job_id, None)
        self._progress_if_idle()
        if job is None:
            return
        if job.version_id not in self.tree:
            return
        version = self.tree.get(job.version_id)
        self.tree.finish(version.id, message.image, partial=False)
        self.undo_stack.push(AddVersionCommand(self.tree, version))
        count = len(version.step_indices)
        rate = count / message.elapsed if message.elapsed > 0 else 0.0
        self.status.emit(f"{version.name} done in {message.elapsed:.1f} s ({rate:.1f} it/s).", 8000)
        if version.id == self.view.version_id:
            self._frame_now()

    def _end_job(self, job_id: int, status: str) -> None:
        """A job stopped early: keep its steps as a partial version, or drop an empty one."""
        job = self.jobs.pop(job_id, None)
        self.status.emit(status, 8000)
        self._progress_if_idle()
        if job is None or job.version_id not in self.tree:
            return
        version = self.tree.get(job.version_id)
        if version.step_indices:
            self.tree.finish(version.id, None, partial=True)
            self.undo_stack.push(AddVersionCommand(self.tree, version))
            if version.id == self.view.version_id:
                self._frame_now()
        else:
            self.tree.remove(version.id)

    def _on_scored(self, message: Scored) -> None:
        job = self.score_jobs.pop(message.job_id, None)
        if job is None:
            return
        alone = len(message.rows) < 2  # novelty in context needs a context
        for row, context in zip(message.rows, message.context_novelty, strict=True):
            if row.key in self.tree:
                earlier = self.tree.scores(row.key)
                scores = VersionScores.from_row(
                    row,
                    message.setting,
                    None if alone else context,
                    job.plugin_settings,
                    () if earlier is None else earlier.plugins,
                )
                self.tree.set_scores(row.key, scores)
        self._emit_score_progress()
        self.status.emit(
            f"Scored {len(message.rows)} in {message.elapsed:.1f} s "
            f"({message.evaluations} UNet evaluations).",
            8000,
        )
        self.scores_changed.emit()

    def _end_score_job(self, message: JobCancelled | JobFailed) -> None:
        self.score_jobs.pop(message.job_id, None)
        self._emit_score_progress()
        if isinstance(message, JobFailed):
            self.error.emit(message.error)
            self.status.emit(f"Scoring failed: {message.error}", 8000)
        else:
            self.status.emit("Scoring cancelled.", 8000)

    def _emit_score_progress(self) -> None:
        jobs = self.score_jobs.values()
        total = sum(len(job.version_ids) for job in jobs)
        self.score_progress.emit((sum(job.done for job in jobs), total) if total else None)

    def _progress_if_idle(self) -> None:
        if not any(job.started for job in self.jobs.values()):
            self.progress_changed.emit(None)

    # ---- the view -------------------------------------------------------------------------

    def current_version(self) -> Version | None:
        vid = self.view.version_id
        return self.tree.get(vid) if vid in self.tree else None

    def trajectory(self) -> list[StepRef]:
        """The stored steps of the version on view, inherited ones first."""
        return list(self._trajectory)

    def forward_count(self) -> int:
        """Timeline positions before the stored steps that show the forward (noising) half of
        an image-to-image version (0 for text-to-image): position ``forward_count() + k`` is
        stored step k of :meth:`trajectory`."""
        return self._forward

    def last_position(self) -> int:
        """The timeline position of the last stored step (or of the last forward frame)."""
        return max(0, self._forward + len(self._trajectory) - 1)

    def _request_forward(self) -> None:
        """Ask the worker for the forward frames of the version on view, unless kept."""
        version = self.current_version()
        root = forward_recipe(version.recipe) if version is not None else None
        if root is None or version.id in self.forward_frames or not self.model.loaded:
            return
        try:
            images = self.init_images.for_recipe(root)
        except RecipeError as exc:
            self.status.emit(str(exc), 8000)
            return
        self.client.send(Forward(version.id, root, images))

    def show_version(self, version_id: str | None) -> None:
        """Put a version (or nothing) on view at its last step, leaving compare and the canvas."""
        self.view.set_compare(())
        self.view.set_canvas_shown(False)
        version_id = version_id if version_id in self.tree else None
        self._trajectory = self.tree.trajectory(version_id) if version_id else []
        self._forward = forward_count(self.tree.get(version_id).recipe) if version_id else 0
        self.view.set_version(version_id)
        self.view.set_position(self.last_position())
        self.trajectory_reset.emit()
        self._frame_now()
        self._request_forward()

    def step_at(self, position: int) -> StepRecord | None:
        """The stored step at a timeline position; None for a forward frame or past the end."""
        index = position - self._forward
        if not 0 <= index < len(self._trajectory):
            return None
        return self.tree.steps.step(*self._trajectory[index])

    def thumbnails(self) -> list[np.ndarray | None]:
        """One preview per timeline position: the forward frames, then each stored step of the
        trajectory on view (x_t when the toggle is on).

        Steps in memory give theirs at once. The others are None here (placeholders): the
        project reads them off the UI thread and they arrive in ``thumbnails_read``, so
        showing a version of a thousand stored steps reads none of them here."""
        stored: list[np.ndarray | None] = []
        waiting: dict[StepRef, int] = {}
        for position, ref in enumerate(self._trajectory, start=self._forward):
            step = self.tree.steps.in_memory(*ref)
            if step is None:
                waiting[ref] = position
            stored.append(None if step is None else self._thumbnail(step))
        self._read_thumbnails(waiting)
        return [*self._forward_images(), *stored]

    def _read_thumbnails(self, waiting: dict[StepRef, int]) -> None:
        """Ask the project for the previews of ``waiting`` steps (at those timeline positions);
        they reach ``thumbnails_read`` unless the trajectory or the x_t toggle changed first.
        With no project bound yet (one being opened) they are asked for once it is shown."""
        if self.project is None:
            return
        trajectory, static = self._trajectory, self.view.static

        def deliver(thumbnails: dict[tuple[str, int], np.ndarray]) -> None:
            if self._trajectory is trajectory and self.view.static == static:
                self.thumbnails_read.emit(
                    {waiting[StepRef(*ref)]: image for ref, image in thumbnails.items()}
                )

        self.project.read_previews(list(waiting), "xt" if static else "x0", deliver)

    def _forward_images(self) -> list[np.ndarray]:
        version = self.current_version()
        if version is None or not self._forward:
            return []
        root = forward_recipe(version.recipe)
        init = self.init_images.get(root.init_image) if root is not None else None
        return self.forward_frames.frames(version.id, self._forward, init)

    def frame(self) -> Frame:
        """What the version view shows now, from memory or the project file, never the worker."""
        version = self.current_version()
        position = self.view.position
        if version is not None and position < self._forward:
            self._shown_key = None
            image = self._forward_images()[position]
            size = (version.recipe.width, version.recipe.height)
            caption = f"{version.name} · {forward_caption(position, self._forward)}"
            return Frame(image, size, caption, None, "forward")
        step = self.step_at(position)
        if version is None or step is None:
            self._shown_key = None
            caption = "Type a prompt and press Generate (Ctrl+Enter)."
            return Frame(None, None, self._caption(version, None, "") if version else caption)
        key = self._decode_key(position)
        size = (version.recipe.width, version.recipe.height)
        is_last = position == self.last_position()
        result = self.tree.result(version.id) if is_last and not self.view.static else None
        if result is not None:
            image, quality = result, "full decode"
        elif key in self._decoded:
            image, quality = self._decoded[key], "full decode"
        else:
            image, quality = self._thumbnail(step), "preview"
        self._shown_key = key
        return Frame(image, size, self._caption(version, step, quality), step, quality)

    def request_full_decode(self, position: int) -> None:
        """Ask the worker for a full decode of the step at ``position`` (latest wins)."""
        step = self.step_at(position)
        version = self.current_version()
        if step is None or version is None or not self.model.loaded:
            return
        key = self._decode_key(position)
        is_final = position == self.last_position() and version.has_result
        if key in self._decoded or (is_final and not self.view.static):
            return
        which = "xt" if self.view.static else "x0"
        self.client.send(Decode(key, step.checkpoint, which, step.sigma))

    def request_hover_decode(self, position: int) -> np.ndarray | None:
        """The full decode of the step at ``position`` for the filmstrip's hover popup: at
        once when it is the result or cached, else None and asked of the worker (latest
        wins in the "hover" slot, beside the timeline's), arriving in ``hover_decoded``. A forward frame is its own image."""
        version = self.current_version()
        if version is None:
            return None
        if position < self._forward:
            return self._forward_images()[position]
        if self.step_at(position) is None:
            return None
        key = self._decode_key(position)
        if position == self.last_position() and not self.view.static:
            result = self.tree.result(version.id)
            if result is not None:
                return result
        if key in self._decoded:
            return self._decoded[key]
        if not self.model.loaded:
            return None
        step = self.step_at(position)
        assert step is not None
        self._hover = (key, position)
        self.client.send(Decode(key, step.checkpoint, key[2], step.sigma, slot="hover"))
        return None

    def branch_target(self, position: int) -> tuple[BranchTarget, str] | None:
        """Where a branch from ``position`` of the version on view resumes, and how to say it.

        A forward frame is no stored step: a branch from one resumes after the first
        denoising step, and the description says so."""
        version = self.current_version()
        from_forward = position < self._forward
        step = self.step_at(self._forward if from_forward else position)
        if version is None or step is None:
            return None
        owner = self.tree.step_owner(version.id, step.index)
        description = f"Branching from step {step.index + 1} / {step.total} of {owner.name}."
        if from_forward:
            description = (
                "The forward frames are not stored steps, so this branches from the first "
                f"denoising one: step {step.index + 1} / {step.total} of {owner.name}."
            )
        return BranchTarget(owner.id, step.index), description

    def compare(self, first_id: str, second_id: str) -> None:
        self.view.set_compare((first_id, second_id))

    def compare_frames(self) -> tuple[Frame, Frame] | None:
        """The compared pair at the timeline's point: step k of each version, or the same
        fraction of its run when the runs have different lengths."""
        if not self.view.compare:
            return None
        shown = len(self._trajectory)
        stored = max(0, self.view.position - self._forward)
        fraction = stored / (shown - 1) if shown > 1 else 1.0
        frames = []
        for version_id in self.view.compare:
            version = self.tree.get(version_id)
            refs = self.tree.trajectory(version_id)
            if not refs:
                frames.append(Frame(None, None, version.name))
                continue
            position = round(fraction * (len(refs) - 1))
            step = self.tree.steps.step(*refs[position])
            is_last = position == len(refs) - 1
            result = self.tree.result(version_id) if is_last else None
            image = result if result is not None else step.preview_x0
            size = (version.recipe.width, version.recipe.height)
            caption = f"{version.name} · step {step.index + 1} / {step.total}"
            frames.append(Frame(image, size, caption, step))
        return frames[0], frames[1]

    def on_view(self) -> tuple[Version | None, Frame, bool]:
        """The version whose picture is on view, that picture, and whether it is the
        version's last step: B when a comparison in A/B mode shows B, else the current
        version (A, in a side-by-side comparison)."""
        frames = self.compare_frames()
        if frames is not None and not self.view.canvas_shown:
            version_id = self.view.compare[self.view.compare_side]
            frame = frames[self.view.compare_side]
            refs = self.tree.trajectory(version_id)
            at_end = frame.step is None or (bool(refs) and refs[-1][1] == frame.step.index)
            return self.tree.get(version_id), frame, at_end
        return self.current_version(), self.frame(), self.view.position >= self.last_position()

    def _decode_key(self, position: int) -> DecodeKey:
        owner_id, index = self._trajectory[position - self._forward]
        return (owner_id, index, "xt" if self.view.static else "x0")

    def _thumbnail(self, step: StepRecord) -> np.ndarray:
        return step.preview_xt if self.view.static else step.preview_x0

    def _caption(self, version: Version, step: StepRecord | None, quality: str) -> str:
        parts = [version.name]
        if step is not None:
            parts.append(f"step {step.index + 1} / {step.total}")
            parts.append("static x_t" if self.view.static else "x0-hat")
            if quality:
                parts.append(quality)
        if not version.finished:
            parts.append("generating…")
        elif version.partial:
            parts.append(f"partial ({self._why_partial(version)})")
        return " · ".join(parts)

    def _why_partial(self, version: Version) -> str:
        if version.id in self.failed_ids:
            return "failed"
        if version.id in self.interrupted_ids and version.step_indices:
            return f"stopped at step {version.step_indices[-1] + 1} of {version.recipe.steps}"
        return "cancelled"

    def _draw_newest_step(self) -> None:
        """A step arrived on view: draw it, then tell the worker a new frame may come."""
        self.frame_changed.emit()
        if any(job.started for job in self.jobs.values()):
            self.client.send(FrameShown())

    def _frame_now(self, *_args: object) -> None:
        self._frame_timer.stop()
        self.frame_changed.emit()

    def _on_static_changed(self, _static: bool) -> None:
        self.trajectory_reset.emit()
        self._frame_now()
        self.request_full_decode(self.view.position)

    def _on_version_added(self, version_id: str) -> None:
        version = self.tree.get(version_id)
        if not version.finished and self.job_for(version_id) is None:
            # Restored after a crash: nothing is running for it any more.
            self.interrupted_ids.add(version_id)
            self.tree.finish(version_id, None, partial=True)
        if self.view.version_id is None:
            self.show_version(version_id)

    def _on_version_removed(self, version_id: str) -> None:
        if version_id in self.view.compare:
            self.view.set_compare(())
        if version_id == self.view.version_id:
            remaining = self.tree.versions()
            self.show_version(remaining[-1].id if remaining else None)


def _ignore(_message: Message) -> None:
    pass
