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
plain values and back; a test holds every type to it.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from studio.engine.recipe import Recipe

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
    """Load ``ref``; ``config`` is the local config folder a single-file model loads with."""

    ref: str
    config: str = ""


@dataclass(frozen=True)
class ListModels:
    """Scan the bundled model, ``folders`` and the Hugging Face cache; answered by ModelList."""

    folders: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generate:
    """Run ``recipe`` from noise into version ``version_id``."""

    job_id: int
    version_id: str
    recipe: Recipe
    label: str = ""


@dataclass(frozen=True)
class Resume:
    """Continue from a stored step's ``checkpoint`` bytes with ``recipe`` (changed: a branch)."""

    job_id: int
    version_id: str
    recipe: Recipe
    checkpoint: bytes
    label: str = ""


@dataclass(frozen=True)
class Decode:
    """Full VAE decode of a stored step's x0-hat (``which="x0"``) or x_t (``"xt"``).

    Latest wins: a newer Decode replaces a waiting one. ``sigma`` is the step's
    noise level; x_t is brought to unit variance with it first, as the fast
    preview does."""

    key: DecodeKey
    checkpoint: bytes
    which: Literal["x0", "xt"] = "x0"
    sigma: float | None = None


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


Request = LoadModel | ListModels | Generate | Resume | Decode | TokenInfo | Cancel | CancelAll
JobRequest = Generate | Resume


# ---- messages (worker -> session) -----------------------------------------------------


@dataclass(frozen=True)
class ModelLoading:
    ref: str


@dataclass(frozen=True)
class ModelLoaded:
    """A model is ready. The last four fields are its
    :class:`~studio.engine.memory.SizeBudget` (zeros: unknown)."""

    ref: str
    description: str
    size_factor: int
    native_size: int = 0
    fixed_bytes: int = 0
    bytes_per_pixel: float = 0.0
    device_bytes: int = 0


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
class Decoded:
    key: DecodeKey
    image: np.ndarray


@dataclass(frozen=True)
class DecodeFailed:
    key: DecodeKey
    error: str


@dataclass(frozen=True)
class PromptInfo:
    """The tokenizer's count for ``text``; ``unknown`` are the words the model does not know."""

    text: str
    used: int
    limit: int
    dropped: str
    unknown: tuple[str, ...] = ()


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
    | Decoded
    | DecodeFailed
    | PromptInfo
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


_WIRE_TYPES: dict[str, type] = {
    name: obj
    for name, obj in vars(sys.modules[__name__]).items()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj)
}
