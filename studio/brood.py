"""Broods in the window, without widgets: where bred versions came from, and the brood on view.

:class:`BroodOrigins` is the session's record of each bred version's parents and
generation. The version tree has no multi-parent links yet and the project file
stores none, so the record lives in memory: a reopened project shows its bred
versions as roots (their recipes still reproduce them).

:class:`BroodState` is what the brood view shows: the children, the generation,
the cell under the keyboard cursor, the picks, the dose, the version shown
large and whether the brood page is up. Setting a field emits its signal only on a change; the view follows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

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
    """Bred version id → :class:`BroodOrigin`; ``changed(version_id)`` after each record."""

    changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._origins: dict[str, BroodOrigin] = {}

    def record(self, version_id: str, origin: BroodOrigin) -> None:
        self._origins[version_id] = origin
        self.changed.emit(version_id)

    def get(self, version_id: str) -> BroodOrigin | None:
        return self._origins.get(version_id)

    def generation(self, version_id: str) -> int:
        origin = self._origins.get(version_id)
        return origin.generation if origin else 0


class BroodState(QObject):
    """The brood on view (see the module docstring). ``columns`` is the grid's width,
    which cursor moves wrap within."""

    brood_changed = Signal()
    cursor_changed = Signal(int)
    picks_changed = Signal()
    large_changed = Signal(object)  # str | None
    dose_changed = Signal(float)
    size_changed = Signal(int)
    shown_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.children: tuple[str, ...] = ()
        self.generation = 0
        self.cursor = 0
        self.picks: tuple[str, ...] = ()
        self.large: str | None = None
        self.dose = DEFAULT_DOSE
        self.size = DEFAULT_CHILDREN
        self.shown = False

    @property
    def columns(self) -> int:
        return grid_columns(len(self.children))

    def set_brood(self, children: Sequence[str], generation: int) -> None:
        """A new brood: the cursor on its first child, no picks, the grid on view."""
        self.children, self.generation = tuple(children), generation
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
