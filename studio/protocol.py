"""The job protocol: what the session asks of a worker, and what a worker says back.

Plain frozen dataclasses of numbers, strings, bytes, numpy arrays and
:class:`~studio.engine.recipe.Recipe` (itself plain data with a JSON form). No
torch and no Qt, so the same messages serve the in-process worker thread, a Ray
actor or a remote server. Checkpoints cross every boundary as bytes
(``Checkpoint.to_bytes()``), serialised by the worker on the thread that owns
torch right after each step; previews cross as uint8 arrays.

Every job names the version it feeds (``version_id``), chosen by the session
before the job is sent, so many jobs can be in flight at once. Job ids are
chosen by the session too.

:func:`to_wire` / :func:`from_wire` turn any request or message into a dict of
plain values and back; a test holds every type to it. :func:`pack_step` packs the
message sent every step into one bytes payload, which is cheaper to move between
processes.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from studio.engine.plugins import PluginSpec
from studio.engine.recipe import BUNDLED_MODEL, Recipe

DecodeKey = tuple[str, int, str]
"""(version that owns the step, step index, "x0" or "xt")."""


# ---- the one step record ----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StepRecord:
    """One completed denoising step, the same shape from the worker to the file and back.

    ``index`` is the 0-based step just completed, of ``total`` ("step index+1 of
    total" in the UI). ``checkpoint`` is the engine's ``Checkpoint.to_bytes()``:
    safetensors, never pickle. ``preview_x0``/``preview_xt`` are uint8 HxWx3.
    """

    index: int
    total: int
    timestep: float
    sigma: float | None
    checkpoint: bytes
    preview_x0: np.ndarray
    preview_xt: np.ndarray


# ---- requests (session -> worker) ---------------------------------------------------


@dataclass(frozen=True)
class LoadModel:
    """Load ``ref``; ``config`` is the local config folder a single-file model loads with.

    ``memory_saving``: the memory savers, in ``MemorySaving.parse``'s format
    (``"vae_tiling=on,cpu_offload=off"``; "" leaves each to the worker's environment or
    automatic). The worker loads every later model with them too, and loads ``ref``
    again when they differ from those it holds."""

    ref: str
    config: str = ""
    memory_saving: str = ""


@dataclass(frozen=True)
class ListModels:
    """Scan the bundled model, ``folders`` and the Hugging Face cache; answered by ModelList."""

    folders: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generate:
    """Run ``recipe`` from noise into version ``version_id``.

    ``images``: the uint8 pixels the recipe names by hash (an init image, H×W×3, and
    a mask, H×W), for image-to-image and inpainting; empty for text-to-image."""

    job_id: int
    version_id: str
    recipe: Recipe
    label: str = ""
    images: tuple[np.ndarray, ...] = ()
    stop_after: int | None = None
    """The last step index to run, for a job that is meant to end early (a pruned search's
    candidate): the job then ends as ``JobCancelled``, a partial version that resumes."""


@dataclass(frozen=True)
class Resume:
    """Continue from a stored step's ``checkpoint`` bytes with ``recipe`` (changed: a branch)."""

    job_id: int
    version_id: str
    recipe: Recipe
    checkpoint: bytes
    label: str = ""
    images: tuple[np.ndarray, ...] = ()
    """As Generate's: the pixels the recipe names, needed again at every step of an inpaint."""
    stop_after: int | None = None
    """As Generate's (a run resumed after a lost worker keeps where it was meant to end)."""


@dataclass(frozen=True)
class GenerateBatch:
    """Run ``jobs`` through the UNet as one batch: a brood's children, a grid's cells, a
    search's candidates, or a search's survivors resumed from one step.

    Each member stays its own job: its own JobStarted, StepMade and ending, its own
    Cancel (which drops it from the batch; the others run on), its own queue row. The
    members share the recipe fields of ``studio.engine.batching.batch_key`` and each
    recipe's ``batch`` is at least ``len(jobs)``, so a member's lone run (and a resume
    from any of its stored steps) pads to the batch and gives the same bits. A worker
    that cannot batch (one job per actor on a cluster) runs the members as plain jobs."""

    jobs: tuple[Generate | Resume, ...]


@dataclass(frozen=True)
class Decode:
    """Full VAE decode of a stored step's x0-hat (``which="x0"``) or x_t (``"xt"``).

    Latest wins within a ``slot``: a newer Decode replaces a waiting one of the same
    slot, so the filmstrip's "hover" never drops the timeline's "view". ``sigma`` is
    the step's noise level; x_t is brought to unit variance with it first, as the
    fast preview does."""

    key: DecodeKey
    checkpoint: bytes
    which: Literal["x0", "xt"] = "x0"
    sigma: float | None = None
    slot: str = "view"


@dataclass(frozen=True)
class DecodeSteps:
    """Full VAE decodes of many stored steps (an export's frames), answered under ``key``.

    Not latest wins: requests are served in turn, a batch of the VAE at a time (as many
    as memory allows, 8 at most), between the steps of a running job. Each batch comes
    back as a :class:`StepsDecoded`; :class:`CancelDecodeSteps` stops it before the next
    block of the VAE. ``checkpoints`` are the steps' ``Checkpoint.to_bytes()``;
    ``sigmas`` (for ``which="xt"``) their noise levels, as Decode's ``sigma``."""

    key: str
    checkpoints: tuple[bytes, ...]
    which: Literal["x0", "xt"] = "x0"
    sigmas: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class CancelDecodeSteps:
    """Stop the DecodeSteps named ``key``, waiting or being served (a last StepsDecoded
    with ``cancelled`` says so)."""

    key: str


@dataclass(frozen=True)
class Forward:
    """The forward (noising) half of an image-to-image ``recipe``, as previews from its init
    image to the latent its first denoising step starts from (the engine's
    ``Sampler.forward_previews``); answered by ForwardMade under ``key``. Latest wins.
    ``images``: as Generate's."""

    key: str
    recipe: Recipe
    images: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class TokenInfo:
    """Token counts for each text (one PromptInfo each), once a model is loaded. Latest wins."""

    texts: tuple[str, ...]


@dataclass(frozen=True)
class Cancel:
    """Cancel one job (running or waiting); ``job_id=None`` cancels the running one."""

    job_id: int | None = None


@dataclass(frozen=True)
class CancelAll:
    pass


@dataclass(frozen=True)
class FrameShown:
    """The UI drew the newest step: the next step may spend a tiny-decoder preview.

    Latest wins: until this arrives (and at most ``FRAME_RATE`` times a second) steps keep
    the cheap linear preview, so the preview's cost follows what the screen can show."""


@dataclass(frozen=True)
class Score:
    """Score candidates for fidelity to ``prompt`` and for novelty (:mod:`studio.engine.scoring`).

    ``items`` are uint8 H×W×3 images or stored steps' checkpoint bytes (whose x0-hat
    is scored: a version's last step, or step k of an early-pruned search); ``keys``
    name them (version ids, say) and come back on every row. ``alternatives`` are
    scored on the same draws (``ScoreRow.alternative_fidelities``). A run costs
    ``timesteps × noises × (1 + len(alternatives) + 1)`` UNet evaluations per item.
    It runs in the job queue and is cancelled like any job; it feeds no version, so
    its JobCancelled / JobFailed carry ``version_id=""``. ``plugins`` name optional local
    scorer plug-ins (:mod:`studio.engine.plugins`); each adds a named value to every row
    (``ScoreRow.plugin_scores``), and a folder that fails its checks fails the job."""

    job_id: int
    prompt: str
    items: tuple[np.ndarray | bytes, ...]
    keys: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()
    model: str = BUNDLED_MODEL
    timesteps: int = 8
    noises: int = 2
    seed: int = 0
    label: str = ""
    plugins: tuple[PluginSpec, ...] = ()
    version_id: ClassVar[str] = ""


Request = (
    LoadModel
    | ListModels
    | Generate
    | Resume
    | GenerateBatch
    | Decode
    | DecodeSteps
    | CancelDecodeSteps
    | Forward
    | TokenInfo
    | Cancel
    | CancelAll
    | Score
    | FrameShown
)
JobRequest = Generate | Resume | Score


# ---- messages (worker -> session) -----------------------------------------------------


@dataclass(frozen=True)
class ModelLoading:
    ref: str


@dataclass(frozen=True)
class ModelLoaded:
    """A model is ready. ``native_size`` to ``device_bytes`` are its
    :class:`~studio.engine.memory.SizeBudget` (zeros: unknown); ``preview`` names the
    fast preview it uses ("tiny decoder (taesd)", "linear map"; empty: unknown)."""

    ref: str
    description: str
    size_factor: int
    native_size: int = 0
    fixed_bytes: int = 0
    bytes_per_pixel: float = 0.0
    device_bytes: int = 0
    preview: str = ""


@dataclass(frozen=True)
class ModelFailed:
    ref: str
    error: str


@dataclass(frozen=True)
class ModelList:
    """(label, ref) pairs for the model picker."""

    models: tuple[tuple[str, str], ...]


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
    version_id: str
    recipe: Recipe
    first_step: int
    total_steps: int


@dataclass(frozen=True)
class StepMade:
    job_id: int
    version_id: str
    step: StepRecord
    elapsed: float
    steps_done: int


@dataclass(frozen=True)
class JobFinished:
    job_id: int
    version_id: str
    image: np.ndarray
    elapsed: float


@dataclass(frozen=True)
class JobCancelled:
    job_id: int
    version_id: str
    steps_done: int


@dataclass(frozen=True)
class JobFailed:
    job_id: int
    version_id: str
    error: str
    steps_done: int


@dataclass(frozen=True)
class StepPreviews:
    """Better x0-hat previews for steps of a job that were sent with the linear map.

    The live preview is latest wins (:class:`FrameShown`), so steps the screen had no
    time for carry the cheap map; once the job has ended the worker decodes those steps
    with the tiny decoder, in batches, and sends them here to replace the stored ones.
    ``indices[i]`` is the step of ``previews[i]`` (uint8 H×W×3, image size)."""

    job_id: int
    version_id: str
    indices: tuple[int, ...]
    previews: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Decoded:
    key: DecodeKey
    image: np.ndarray


@dataclass(frozen=True)
class DecodeFailed:
    key: DecodeKey
    error: str


@dataclass(frozen=True)
class StepsDecoded:
    """One batch of a DecodeSteps: ``images`` are items ``start`` .. ``start+len-1``
    (uint8 H×W×3), and ``done`` of ``total`` items are answered. ``failed`` lists the items
    of this batch whose decode gave NaN or black (their image is empty, 0×0×3). The last
    message of a request has ``done == total``, or ``cancelled``, or an ``error`` (no
    image: the rest of the request was not decoded)."""

    key: str
    start: int
    images: tuple[np.ndarray, ...]
    done: int
    total: int
    failed: tuple[int, ...] = ()
    cancelled: bool = False
    error: str = ""

    @property
    def last(self) -> bool:
        return self.cancelled or bool(self.error) or self.done >= self.total


@dataclass(frozen=True)
class ForwardMade:
    """A Forward's frames (uint8 H×W×3, the init image first); none, and ``error``, if it failed."""

    key: str
    frames: tuple[np.ndarray, ...]
    error: str = ""


@dataclass(frozen=True)
class PromptInfo:
    """The tokenizer's count for ``text``; ``unknown`` are the words the model does not know."""

    text: str
    used: int
    limit: int
    dropped: str
    unknown: tuple[str, ...] = ()


SCORE_METHOD = "diffusion-errors-1"
"""Names the scoring formulas; stored with scores so that a change of formula shows."""


@dataclass(frozen=True)
class ScoreSetting:
    """What produced a set of scores: stored with them, compared before reusing them."""

    model: str
    model_hash: str
    timesteps: int
    noises: int
    seed: int
    method: str = SCORE_METHOD


@dataclass(frozen=True)
class PluginScore:
    """One scorer plug-in's value for a row: ``name`` is the plug-in's (``clip``,
    ``aesthetic``); higher is better for both."""

    name: str
    value: float


@dataclass(frozen=True)
class ScoreRow:
    """One candidate's scores (see :class:`studio.engine.scoring.ImageScore`).

    ``fidelity``: higher agrees more with the prompt (share of the unconditional
    denoising error the prompt explains). ``novelty``: ELBO-style surprisal under
    the prompt, bits per latent dimension (higher: more surprising);
    ``novelty_unconditional`` the same without the prompt. ``features`` (float32)
    let novelty in context be recomputed against any set with
    :func:`studio.taste.context_novelty`. ``plugin_scores``: one per plug-in the
    request named, in its order (none unless it named some)."""

    key: str
    fidelity: float
    novelty: float
    novelty_unconditional: float
    alternative_fidelities: tuple[float, ...]
    features: np.ndarray
    plugin_scores: tuple[PluginScore, ...] = ()


@dataclass(frozen=True)
class ScoreProgress:
    """Item ``done`` of ``total`` is scored (rows arrive in the order of the request's items)."""

    job_id: int
    done: int
    total: int
    row: ScoreRow


@dataclass(frozen=True)
class Scored:
    """Every row, in the request's order, with novelty relative to the others.

    ``context_novelty[i]``: row i's leave-one-out contribution to the Vendi score of
    the rows' features (about 1: unlike all others, about 0: a duplicate);
    ``nearest_distance[i]``: cosine distance to its nearest other row (NaN alone)."""

    job_id: int
    rows: tuple[ScoreRow, ...]
    context_novelty: tuple[float, ...]
    nearest_distance: tuple[float, ...]
    vendi: float
    setting: ScoreSetting
    evaluations: int
    elapsed: float


Message = (
    ModelLoading
    | ModelLoaded
    | ModelFailed
    | ModelList
    | QueueChanged
    | JobStarted
    | StepMade
    | JobFinished
    | JobCancelled
    | JobFailed
    | StepPreviews
    | Decoded
    | DecodeFailed
    | StepsDecoded
    | ForwardMade
    | PromptInfo
    | ScoreProgress
    | Scored
)
JobEnded = JobFinished | JobCancelled | JobFailed


def job_label(recipe: Recipe) -> str:
    """What the queue shows for a job: the start of its prompt and its seed."""
    prompt = " ".join(recipe.prompt.split())
    if len(prompt) > 32:
        prompt = prompt[:31] + "…"
    return f"{prompt or '(no prompt)'} · seed {recipe.seed}"


# ---- wire form ----------------------------------------------------------------------------


def to_wire(item: Any) -> Any:
    """A request or message as nested dicts, lists, numbers, strings, bytes and arrays."""
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        if isinstance(item, Recipe):
            return {"__type__": "Recipe", "json": item.to_json()}
        fields = {f.name: to_wire(getattr(item, f.name)) for f in dataclasses.fields(item)}
        return {"__type__": type(item).__name__, **fields}
    if isinstance(item, tuple):
        return [to_wire(v) for v in item]
    if isinstance(item, (bytes, np.ndarray, str, int, float, bool)) or item is None:
        return item
    raise TypeError(f"{type(item).__name__} is not part of the job protocol.")


def from_wire(data: Any) -> Any:
    """The inverse of :func:`to_wire`."""
    if isinstance(data, dict):
        name = data["__type__"]
        if name == "Recipe":
            return Recipe.from_json(data["json"])
        cls = _WIRE_TYPES.get(name)
        if cls is None:
            raise TypeError(f"{name!r} is not part of the job protocol.")
        values = {k: from_wire(v) for k, v in data.items() if k != "__type__"}
        return cls(**values)
    if isinstance(data, list):
        return tuple(from_wire(v) for v in data)
    return data


_HEADER = struct.Struct("<I")


def pack_step(message: StepMade) -> bytes:
    """``message`` as one payload: a length-prefixed JSON header, then the checkpoint
    bytes and the previews' pixels. One bytes object is the cheapest thing to stream
    between processes each step (a dict of arrays costs about twice as much to move)."""
    step = message.step
    previews = [np.ascontiguousarray(step.preview_x0), np.ascontiguousarray(step.preview_xt)]
    header = json.dumps(
        {
            "job_id": message.job_id,
            "version_id": message.version_id,
            "elapsed": message.elapsed,
            "steps_done": message.steps_done,
            "index": step.index,
            "total": step.total,
            "timestep": step.timestep,
            "sigma": step.sigma,
            "checkpoint": len(step.checkpoint),
            "previews": [(p.dtype.str, p.shape) for p in previews],
        }
    ).encode()
    parts = [_HEADER.pack(len(header)), header, step.checkpoint]
    return b"".join([*parts, *(memoryview(p).cast("B") for p in previews)])


def unpack_step(payload: bytes) -> StepMade:
    """The inverse of :func:`pack_step`; the previews are read-only views of ``payload``."""
    (length,) = _HEADER.unpack_from(payload)
    at = _HEADER.size + length
    header = json.loads(payload[_HEADER.size : at])
    checkpoint = payload[at : at + header["checkpoint"]]
    at += header["checkpoint"]
    previews = []
    for dtype, shape in header["previews"]:
        count = int(np.prod(shape))
        array = np.frombuffer(payload, dtype=np.dtype(dtype), count=count, offset=at)
        previews.append(array.reshape(shape))
        at += array.nbytes
    record = StepRecord(
        header["index"],
        header["total"],
        header["timestep"],
        header["sigma"],
        checkpoint,
        previews[0],
        previews[1],
    )
    return StepMade(
        header["job_id"], header["version_id"], record, header["elapsed"], header["steps_done"]
    )


_WIRE_TYPES: dict[str, type] = {
    name: obj
    for name, obj in vars(sys.modules[__name__]).items()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj)
}
