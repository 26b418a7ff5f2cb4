"""The version tree: every generation the user made, with every step it went through.

A :class:`Version` is one run of the sampler: its recipe, where it branched from
(a parent version and the step index it resumed after), the steps it produced,
and its result image. Branching from step ``k`` of a parent resumes from that
step's checkpoint, so a child stores only its own steps ``k+1 .. N-1``;
:meth:`VersionTree.trajectory` joins the inherited steps and its own.

:class:`VersionTree` is the single source of truth for versions. It is a QObject
and emits a signal after every change, so views and the project store can follow
it without polling. All methods must be called on the thread the tree lives in
(the UI thread); edits a user can undo go through ``studio.document.commands``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from studio.engine.recipe import Recipe

if TYPE_CHECKING:  # the checkpoint module pulls in torch; the window must open without it
    from studio.engine.checkpoint import Checkpoint


@dataclass
class StoredStep:
    """One completed denoising step as the document keeps it.

    ``index`` is the 0-based step just completed, of ``total``. ``checkpoint``
    is either a :class:`Checkpoint` or its serialised bytes (the store may swap
    one for the other); :meth:`load_checkpoint` always gives the object.
    ``preview_x0``/``preview_xt`` are uint8 HxWx3 arrays at latent resolution.
    """

    index: int
    total: int
    timestep: float
    sigma: float | None
    checkpoint: Checkpoint | bytes
    preview_x0: np.ndarray
    preview_xt: np.ndarray

    def load_checkpoint(self) -> Checkpoint:
        if isinstance(self.checkpoint, (bytes, bytearray, memoryview)):
            from studio.engine.checkpoint import Checkpoint

            return Checkpoint.from_bytes(bytes(self.checkpoint))
        return self.checkpoint

    def checkpoint_bytes(self) -> bytes:
        if isinstance(self.checkpoint, (bytes, bytearray, memoryview)):
            return bytes(self.checkpoint)
        return self.checkpoint.to_bytes()


@dataclass(eq=False)
class Version:
    """One generation in the tree.

    ``parent_id``/``branch_step`` are both None for a version started from noise;
    otherwise the run resumed from the parent's checkpoint after step
    ``branch_step`` (0-based). ``partial`` is True when the run was cancelled or
    failed before its last step. ``finished`` is False while the run is still
    producing steps.
    """

    recipe: Recipe
    name: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    parent_id: str | None = None
    branch_step: int | None = None
    steps: list[StoredStep] = field(default_factory=list)
    result: np.ndarray | None = None
    created: float = field(default_factory=time.time)
    partial: bool = False
    finished: bool = False

    @property
    def is_branch(self) -> bool:
        return self.parent_id is not None


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
    """

    version_added = Signal(str)
    version_removed = Signal(str)
    version_renamed = Signal(str, str)
    step_appended = Signal(str, int)
    version_finished = Signal(str)
    result_changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
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
        out: list[Version] = []
        frontier = [version_id]
        while frontier:
            kids = [v for v in self._versions.values() if v.parent_id in frontier]
            out.extend(kids)
            frontier = [v.id for v in kids]
        return out

    def trajectory(self, version_id: str) -> list[StoredStep]:
        """The full list of steps of a version: inherited ones up to the branch point, then its own."""
        version = self.get(version_id)
        own = list(version.steps)
        if version.parent_id is None or version.branch_step is None:
            return own
        inherited = [
            s for s in self.trajectory(version.parent_id) if s.index <= version.branch_step
        ]
        return inherited + own

    def step_owner(self, version_id: str, step_index: int) -> Version:
        """The version that actually produced step ``step_index`` of ``version_id``'s trajectory."""
        version = self.get(version_id)
        while (
            version.parent_id is not None
            and version.branch_step is not None
            and step_index <= version.branch_step
        ):
            version = self.get(version.parent_id)
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
    ) -> Version:
        """Make (but do not add) a version with the next default name."""
        if (parent_id is None) != (branch_step is None):
            raise VersionError("A branch needs both a parent and a branch step.")
        if parent_id is not None:
            self.get(parent_id)
        self._created_count += 1
        return Version(
            recipe=recipe,
            name=name or f"v{self._created_count}",
            parent_id=parent_id,
            branch_step=branch_step,
        )

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

    def append_step(self, version_id: str, step: StoredStep) -> None:
        version = self.get(version_id)
        version.steps.append(step)
        self.step_appended.emit(version_id, step.index)

    def set_result(self, version_id: str, image: np.ndarray | None) -> None:
        self.get(version_id).result = image
        self.result_changed.emit(version_id)

    def finish(self, version_id: str, result: np.ndarray | None, partial: bool) -> None:
        version = self.get(version_id)
        version.result = result
        version.partial = partial
        version.finished = True
        self.version_finished.emit(version_id)


def _name_number(name: str) -> int:
    if name.startswith("v") and name[1:].isdigit():
        return int(name[1:])
    return 0
