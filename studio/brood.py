"""Broods in the window, without widgets: where bred versions came from, and the brood on view.

:class:`BroodOrigins` answers where a bred version came from: its parents and
generation. The document holds them (``Version.bred_from`` and
``Version.generation``, stored in the project file); the origins only bridge the
time between sending a child's job and its version appearing in the tree.

:class:`BroodState` is what the brood view shows: the children, the generation,
the cell under the keyboard cursor, the picks, the dose, whether parents'
prompts are mixed, the version shown large and whether the brood page is up. Setting a field emits its signal only on a change; the view follows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from studio.document.versions import VersionTree
from studio.engine.breeding import MAX_CHILDREN

DEFAULT_CHILDREN = 8
DEFAULT_DOSE = 0.25


@dataclass(frozen=True)
class BroodOrigin:
    """A bred version's parents (version ids, first one the settings came from) and its
    generation: one more than its most-bred parent's (a version that was not bred is 0)."""

    parent_ids: tuple[str, ...]
    generation: int


class BroodOrigins(QObject):
    """Bred version id → :class:`BroodOrigin`, read from ``tree``; ``changed(version_id)``
    when one is recorded for a job or a bred version enters the tree.

    :meth:`record` notes a child whose job is sent but whose version is not in the
    tree yet (:meth:`pending` gives the session what to put on that version)."""

    changed = Signal(str)

    def __init__(self, tree: VersionTree, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tree = tree
        self._pending: dict[str, tuple[tuple[str, float], ...]] = {}
        tree.version_added.connect(self._on_version_added)

    def record(self, version_id: str, bred_from: Sequence[tuple[str, float]]) -> None:
        self._pending[version_id] = tuple((p, float(w)) for p, w in bred_from)
        self.changed.emit(version_id)

    def pending(self, version_id: str) -> tuple[tuple[str, float], ...]:
        """The parents recorded for a job's version that is not in the tree yet (or ())."""
        return self._pending.get(version_id, ())

    def get(self, version_id: str) -> BroodOrigin | None:
        if version_id in self._tree:
            version = self._tree.get(version_id)
            if not version.bred_from:
                return None
            return BroodOrigin(version.bred_parent_ids, version.generation)
        bred_from = self._pending.get(version_id)
        if not bred_from:
            return None
        parent_ids = tuple(p for p, _ in bred_from)
        return BroodOrigin(parent_ids, self._tree.generation_after(parent_ids))

    def generation(self, version_id: str) -> int:
        origin = self.get(version_id)
        return origin.generation if origin else 0

    def _on_version_added(self, version_id: str) -> None:
        self._pending.pop(version_id, None)
        if self._tree.get(version_id).bred_from:
            self.changed.emit(version_id)


class BroodState(QObject):
    """The brood on view (see the module docstring). ``columns`` is the grid's width,
    which cursor moves wrap within."""

    brood_changed = Signal()
    cursor_changed = Signal(int)
    picks_changed = Signal()
    large_changed = Signal(object)  # str | None
    dose_changed = Signal(float)
    size_changed = Signal(int)
    mix_prompts_changed = Signal(bool)
    shown_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.children: tuple[str, ...] = ()
        self.generation = 0
        self.cursor = 0
        self.picks: tuple[str, ...] = ()
        self.large: str | None = None
        self.title = ""
        self.dose = DEFAULT_DOSE
        self.size = DEFAULT_CHILDREN
        self.mix_prompts = True
        """Breed and cross on the mix of the parents' prompts when they differ."""
        self.shown = False

    @property
    def columns(self) -> int:
        return grid_columns(len(self.children))

    def set_brood(self, children: Sequence[str], generation: int, title: str = "") -> None:
        """A new brood: the cursor on its first child, no picks, the grid on view.
        ``title`` names a brood that is no generation (a pruned search's candidates)."""
        self.children, self.generation, self.title = tuple(children), generation, title
        self.cursor = 0
        self.picks = ()
        self.large = None
        self.brood_changed.emit()
        self.picks_changed.emit()
        self.large_changed.emit(None)
        self.cursor_changed.emit(0)

    def reorder(self, children: Sequence[str]) -> None:
        """The same children in another order (by score, say); picks stay, the cursor
        stays on its child."""
        children = tuple(children)
        if sorted(children) != sorted(self.children):
            raise ValueError("A brood can only be reordered with its own children.")
        if children == self.children:
            return
        under_cursor = self.children[self.cursor] if self.children else None
        self.children = children
        self.brood_changed.emit()
        if under_cursor is not None:
            self.cursor = children.index(under_cursor)
            self.cursor_changed.emit(self.cursor)

    def set_cursor(self, index: int) -> None:
        index = max(0, min(len(self.children) - 1, index))
        if index != self.cursor:
            self.cursor = index
            self.cursor_changed.emit(index)

    def move_cursor(self, columns: int, rows: int) -> None:
        """Move by ``columns`` cells sideways and ``rows`` up or down, within the grid."""
        self.set_cursor(self.cursor + columns + rows * self.columns)

    def toggle_pick(self, version_id: str) -> None:
        if version_id in self.picks:
            self.picks = tuple(p for p in self.picks if p != version_id)
        elif version_id in self.children:
            self.picks = (*self.picks, version_id)
        else:
            return
        self.picks_changed.emit()

    def pick(self, version_id: str) -> None:
        """Make ``version_id`` a pick (a no-op when it is one) and put the cursor on it."""
        if version_id in self.children:
            self.set_cursor(self.children.index(version_id))
            if version_id not in self.picks:
                self.toggle_pick(version_id)

    def flip(self) -> None:
        """Space: with two or more picks, show the last two large in turn; with one, show it
        large or go back to the grid; with none, the cell under the cursor."""
        if len(self.picks) >= 2:
            first, second = self.picks[-2], self.picks[-1]
            self.set_large(second if self.large == first else first)
        elif self.large is not None:
            self.set_large(None)
        elif self.picks:
            self.set_large(self.picks[0])
        elif self.children:
            self.set_large(self.children[self.cursor])

    def set_large(self, version_id: str | None) -> None:
        if version_id != self.large:
            self.large = version_id
            self.large_changed.emit(version_id)

    def set_dose(self, dose: float) -> None:
        dose = max(0.0, min(1.0, float(dose)))
        if dose != self.dose:
            self.dose = dose
            self.dose_changed.emit(dose)

    def set_size(self, size: int) -> None:
        size = max(1, min(MAX_CHILDREN, int(size)))
        if size != self.size:
            self.size = size
            self.size_changed.emit(size)

    def set_mix_prompts(self, mix: bool) -> None:
        mix = bool(mix)
        if mix != self.mix_prompts:
            self.mix_prompts = mix
            self.mix_prompts_changed.emit(mix)

    def set_shown(self, shown: bool) -> None:
        if shown != self.shown:
            self.shown = shown
            self.shown_changed.emit(shown)

    def forget(self, version_id: str) -> None:
        """A child was deleted: it is no longer a pick or shown large."""
        if version_id in self.picks:
            self.toggle_pick(version_id)
        if version_id == self.large:
            self.set_large(None)


def grid_columns(count: int) -> int:
    """The grid's width for ``count`` cells: about twice as wide as tall (4 × 2 for 8,
    12 × 6 for 64), to suit the landscape page."""
    return max(1, min(count, math.ceil(math.sqrt(2 * count))))
