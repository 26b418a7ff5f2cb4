"""The version tree: every generation the user made, with every step it went through.

A :class:`Version` is one run of the sampler: its recipe, where it branched from
(a parent version and the step index it resumed after) or what it was bred from
(two or more parents with their weights, and its generation), the steps it
produced, its result image and its taste scores. Branching from step ``k`` of a parent resumes from that
step's checkpoint, so a child stores only its own steps ``k+1 .. N-1``;
:meth:`VersionTree.trajectory` joins the inherited steps and its own.

:class:`VersionTree` is the single source of truth for versions. It is a QObject
and emits a signal after every change, so views and the project store can follow
it without polling. All methods must be called on the thread the tree lives in
(the UI thread); edits a user can undo go through ``studio.document.commands``.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
from PySide6.QtCore import QObject, Signal

from studio.document.scores import VersionScores
from studio.engine.recipe import Recipe
from studio.protocol import StepRecord

CACHE_SIZE = 96
"""Step records and results kept in memory once read: two trajectories' worth of scrubbing."""
THUMBNAIL_SIDE = 128


class StepLoader(Protocol):
    """Reads what a tree keeps out of memory: the project file."""

    def load_step(self, version_id: str, index: int) -> StepRecord: ...

    def load_result(self, version_id: str) -> np.ndarray | None: ...


class StepStore:
    """The heavy part of a tree: every step record and result image, read on demand.

    Steps and results made in this session are held in memory until
    :meth:`release` says the project file has them; everything else is read
    through the ``loader`` into a small LRU cache, so memory does not grow with
    the number of stored steps. UI thread only.
    """

    def __init__(self, loader: StepLoader | None = None, cache_size: int = CACHE_SIZE) -> None:
        self.loader = loader
        self._cache_size = cache_size
        self._held: dict[tuple[str, int], StepRecord] = {}
        self._replaced: dict[tuple[str, int], np.ndarray] = {}  # previews the file lacks yet
        self._held_results: dict[str, np.ndarray | None] = {}
        self._cache: OrderedDict[tuple[str, int] | str, Any] = OrderedDict()

    def put_step(self, version_id: str, record: StepRecord) -> None:
        self._held[(version_id, record.index)] = record

    def put_result(self, version_id: str, image: np.ndarray | None) -> None:
        self._held_results[version_id] = image
        self._cache.pop(version_id, None)

    def step(self, version_id: str, index: int) -> StepRecord:
        key = (version_id, index)
        held = self._held.get(key)
        if held is not None:
            return held
        record: StepRecord = self._cached(key, lambda: self._loader().load_step(version_id, index))
        replaced = self._replaced.get(key)
        if replaced is not None and record.preview_x0 is not replaced:
            record = dataclasses.replace(record, preview_x0=replaced)
            self._cache[key] = record
        return record

    def in_memory(self, version_id: str, index: int) -> StepRecord | None:
        """The step if it is held or cached, without reading it (None otherwise)."""
        key = (version_id, index)
        record: StepRecord | None = self._held.get(key) or self._cache.get(key)
        return record

    def result(self, version_id: str) -> np.ndarray | None:
        if version_id in self._held_results:
            return self._held_results[version_id]
        return self._cached(version_id, lambda: self._loader().load_result(version_id))

    def replace_preview(self, version_id: str, index: int, preview_x0: np.ndarray) -> None:
        """Put a better x0-hat preview on the step. A step the file already holds keeps it
        here too until :meth:`release` says the file's copy has it (its update landed)."""
        key = (version_id, index)
        if key in self._held:
            self._held[key] = dataclasses.replace(self._held[key], preview_x0=preview_x0)
            return
        self._replaced[key] = preview_x0
        cached = self._cache.get(key)
        if isinstance(cached, StepRecord):
            self._cache[key] = dataclasses.replace(cached, preview_x0=preview_x0)

    def release(self, version_id: str, index: int | None = None) -> None:
        """The file holds this step (or, with no index, this result): memory may let it go."""
        if self.loader is None:
            return
        if index is None:
            self._held_results.pop(version_id, None)
        else:
            self._held.pop((version_id, index), None)
            self._replaced.pop((version_id, index), None)

    def held_count(self) -> int:
        return len(self._held) + len(self._held_results)

    def _loader(self) -> StepLoader:
        if self.loader is None:
            raise VersionError("This step is not in memory and the document has no file.")
        return self.loader

    def _cached(self, key: tuple[str, int] | str, load: Callable[[], Any]) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = load()
        self._cache[key] = value
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return value


class StepRef(NamedTuple):
    """A step of a trajectory: the version that produced it and its 0-based index."""

    owner_id: str
    index: int


@dataclass(eq=False)
class Version:
    """One generation in the tree.

    ``parent_id``/``branch_step`` are both None for a version started from noise;
    otherwise the run resumed from the parent's checkpoint after step
    ``branch_step`` (0-based). ``partial`` is True when the run was cancelled or
    failed before its last step. ``finished`` is False while the run is still
    producing steps.

    The version keeps only the indices of its own steps and a small
    ``thumbnail``; the step records and the result image live in the tree's
    :class:`StepStore` (``tree.step(...)``, ``tree.result(...)``).
    """

    recipe: Recipe
    name: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    parent_id: str | None = None
    branch_step: int | None = None
    step_indices: list[int] = field(default_factory=list)
    thumbnail: np.ndarray | None = None
    has_result: bool = False
    created: float = field(default_factory=time.time)
    partial: bool = False
    finished: bool = False
    bred_from: tuple[tuple[str, float], ...] = ()
    generation: int = 0
    scores: VersionScores | None = None

    @property
    def is_branch(self) -> bool:
        return self.parent_id is not None

    @property
    def is_bred(self) -> bool:
        return bool(self.bred_from)

    @property
    def bred_parent_ids(self) -> tuple[str, ...]:
        return tuple(parent_id for parent_id, _ in self.bred_from)


class VersionError(KeyError):
    """A version id is unknown, or an edit would break the tree."""


class VersionTree(QObject):
    """The ordered set of versions, evented.

    Signals (all carry the version id; emitted after the change is made):

    - ``version_added(id)``, ``version_removed(id)``
    - ``version_renamed(id, name)``
    - ``step_appended(id, step_index)``: a step was stored on a version
    - ``version_finished(id)``: the run ended; ``result``/``partial`` are final
    - ``result_changed(id)``: the result image was replaced
    - ``scores_changed(id)``: the version's scores were set or cleared
    """

    version_added = Signal(str)
    version_removed = Signal(str)
    version_renamed = Signal(str, str)
    step_appended = Signal(str, int)
    previews_replaced = Signal(str, object)  # version id, {step index: uint8 preview_x0}
    version_finished = Signal(str)
    result_changed = Signal(str)
    scores_changed = Signal(str)

    def __init__(self, parent: QObject | None = None, steps: StepStore | None = None) -> None:
        super().__init__(parent)
        self.steps = steps if steps is not None else StepStore()
        self._versions: dict[str, Version] = {}
        self._created_count = 0

    # ---- reading ------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._versions)

    def __contains__(self, version_id: object) -> bool:
        return version_id in self._versions

    def __iter__(self) -> Iterator[Version]:
        return iter(list(self._versions.values()))

    def get(self, version_id: str) -> Version:
        try:
            return self._versions[version_id]
        except KeyError:
            raise VersionError(f"No version with id {version_id!r}.") from None

    def versions(self) -> list[Version]:
        """All versions in the order they were added."""
        return list(self._versions.values())

    def roots(self) -> list[Version]:
        return [v for v in self._versions.values() if v.parent_id is None]

    def children(self, version_id: str) -> list[Version]:
        return [v for v in self._versions.values() if v.parent_id == version_id]

    def descendants(self, version_id: str) -> list[Version]:
        """All versions below ``version_id``, parents before their children."""
        children: dict[str, list[Version]] = {}
        for v in self._versions.values():
            if v.parent_id is not None:
                children.setdefault(v.parent_id, []).append(v)
        out: list[Version] = []
        frontier = [version_id]
        while frontier:
            kids = [kid for parent in frontier for kid in children.get(parent, [])]
            out.extend(kids)
            frontier = [v.id for v in kids]
        return out

    def lineage(self, version_id: str) -> list[Version]:
        """The version, its parent, and so on up to the version started from noise."""
        # A loop, impossible through add(), is refused rather than followed for ever.
        chain = [self.get(version_id)]
        seen = {version_id}
        while chain[-1].parent_id is not None and chain[-1].branch_step is not None:
            parent_id = chain[-1].parent_id
            if parent_id in seen:
                raise VersionError(f"The versions above {chain[0].name!r} form a loop.")
            seen.add(parent_id)
            chain.append(self.get(parent_id))
        return chain

    def trajectory(self, version_id: str) -> list[StepRef]:
        """Every step of a version: inherited ones up to the branch point, then its own.

        Walks the lineage iteratively: a chain of thousands of branches is fine."""
        refs: list[StepRef] = []
        upto: int | None = None  # the lowest branch point below this ancestor
        pieces: list[list[StepRef]] = []
        for version in self.lineage(version_id):
            pieces.append(
                [
                    StepRef(version.id, index)
                    for index in version.step_indices
                    if upto is None or index <= upto
                ]
            )
            if version.branch_step is not None:
                upto = version.branch_step if upto is None else min(upto, version.branch_step)
        for piece in reversed(pieces):
            refs.extend(piece)
        return refs

    def step(self, version_id: str, index: int) -> StepRecord:
        """Step ``index`` of ``version_id``'s trajectory, from whichever version produced it."""
        return self.steps.step(self.step_owner(version_id, index).id, index)

    def last_step(self, version_id: str) -> StepRecord | None:
        refs = self.trajectory(version_id)
        return self.steps.step(*refs[-1]) if refs else None

    def result(self, version_id: str) -> np.ndarray | None:
        """The full decode of a finished version, or None."""
        if not self.get(version_id).has_result:
            return None
        return self.steps.result(version_id)

    def best_image(self, version_id: str) -> np.ndarray | None:
        """The result, or else the newest step's x0-hat preview."""
        result = self.result(version_id)
        if result is not None:
            return result
        last = self.last_step(version_id)
        return None if last is None else last.preview_x0

    def step_owner(self, version_id: str, step_index: int) -> Version:
        """The version that actually produced step ``step_index`` of ``version_id``'s trajectory."""
        for version in self.lineage(version_id):
            if version.branch_step is None or step_index > version.branch_step:
                return version
        return version

    def next_name(self) -> str:
        return f"v{self._created_count + 1}"

    # ---- building -------------------------------------------------------------

    def new_version(
        self,
        recipe: Recipe,
        parent_id: str | None = None,
        branch_step: int | None = None,
        name: str | None = None,
        version_id: str | None = None,
        bred_from: tuple[tuple[str, float], ...] = (),
    ) -> Version:
        """Make (but do not add) a version with the next default name (and ``version_id``,
        when a job already named the version it feeds). A bred version (``bred_from``)
        gets its generation from its parents in the tree."""
        if (parent_id is None) != (branch_step is None):
            raise VersionError("A branch needs both a parent and a branch step.")
        if parent_id is not None:
            self.get(parent_id)
        self._created_count += 1
        return Version(
            recipe=recipe,
            id=version_id or uuid.uuid4().hex,
            name=name or f"v{self._created_count}",
            parent_id=parent_id,
            branch_step=branch_step,
            bred_from=tuple((p, float(w)) for p, w in bred_from),
            generation=self.generation_after([p for p, _ in bred_from]),
        )

    def generation_after(self, parent_ids: list[str] | tuple[str, ...]) -> int:
        """The generation of a version bred from ``parent_ids`` (0 when there are none)."""
        if not parent_ids:
            return 0
        return 1 + max((self._versions[p].generation for p in parent_ids if p in self), default=0)

    # ---- editing (commands call these; they emit) ------------------------------

    def add(self, version: Version) -> None:
        if version.id in self._versions:
            raise VersionError(f"Version {version.id!r} is already in the tree.")
        if version.parent_id is not None and version.parent_id not in self._versions:
            raise VersionError(f"The parent of {version.name!r} is not in the tree.")
        self._versions[version.id] = version
        self._created_count = max(self._created_count, _name_number(version.name))
        self.version_added.emit(version.id)

    def remove(self, version_id: str) -> Version:
        """Remove one version that has no children; returns it."""
        version = self.get(version_id)
        if self.children(version_id):
            raise VersionError(f"Version {version.name!r} still has branches; remove them first.")
        del self._versions[version_id]
        self.version_removed.emit(version_id)
        return version

    def clear(self) -> None:
        """Remove every version (children first) and start naming from v1 again."""
        for version in reversed(self.versions()):
            del self._versions[version.id]
            self.version_removed.emit(version.id)
        self._created_count = 0

    def rename(self, version_id: str, name: str) -> None:
        version = self.get(version_id)
        if version.name == name:
            return
        version.name = name
        self.version_renamed.emit(version_id, name)

    def append_step(self, version_id: str, step: StepRecord) -> None:
        version = self.get(version_id)
        self.steps.put_step(version_id, step)
        version.step_indices.append(step.index)
        version.thumbnail = thumbnail_of(step.preview_x0)
        self.step_appended.emit(version_id, step.index)

    def replace_previews(self, version_id: str, previews: dict[int, np.ndarray]) -> None:
        """Give stored steps of a version better x0-hat previews (the tiny decoder's, for
        steps whose live preview was the linear map); steps it does not have are ignored."""
        version = self.get(version_id)
        own = set(version.step_indices)
        kept = {index: image for index, image in previews.items() if index in own}
        if not kept:
            return
        for index, image in kept.items():
            self.steps.replace_preview(version_id, index, image)
        self.previews_replaced.emit(version_id, kept)

    def set_result(self, version_id: str, image: np.ndarray | None) -> None:
        self._store_result(self.get(version_id), image)
        self.result_changed.emit(version_id)

    def finish(self, version_id: str, result: np.ndarray | None, partial: bool) -> None:
        version = self.get(version_id)
        self._store_result(version, result)
        version.partial = partial
        version.finished = True
        self.version_finished.emit(version_id)

    def set_scores(self, version_id: str, scores: VersionScores | None) -> None:
        """Put a version's scores (or None: forget them); the project stores them."""
        version = self.get(version_id)
        if version.scores is None and scores is None:
            return
        version.scores = scores
        self.scores_changed.emit(version_id)

    def scores(self, version_id: str) -> VersionScores | None:
        return self.get(version_id).scores

    def _store_result(self, version: Version, image: np.ndarray | None) -> None:
        self.steps.put_result(version.id, image)
        version.has_result = image is not None
        if image is not None:
            version.thumbnail = thumbnail_of(image)


def thumbnail_of(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """A copy of ``image`` no larger than ``side`` on either axis (every k-th pixel)."""
    stride = max(1, -(-max(image.shape[:2]) // side))
    return np.ascontiguousarray(image[::stride, ::stride])


def _name_number(name: str) -> int:
    if name.startswith("v") and name[1:].isdigit():
        return int(name[1:])
    return 0
