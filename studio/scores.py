"""Scores of versions in the window, without widgets: what was scored, and how they are ranked.

The tree keeps each version's scores with the setting that produced them
(:class:`~studio.document.scores.VersionScores`, stored in the project);
:class:`TreeScores` reads them as a mapping (``Session.scores``), which the session
fills from the worker's ``Scored`` messages. :class:`TasteState` is what the scores view shows: the set of versions
on view, the explore ↔ exploit mix and the sort key; setting a field emits its
signal only on a change, and the view follows. Ordering goes through
:mod:`studio.taste`, so the window and the tests rank by the same rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from studio import taste
from studio.document.scores import VersionScores
from studio.document.versions import VersionTree

SORT_KEYS = ("combined", "fidelity", "novelty")
PANEL_ORDERS = ("created", *SORT_KEYS)
PLUGIN_ORDER = "plugin:"
"""The Versions panel orders by a scorer plug-in's value as ``plugin:<name>`` too."""
DEFAULT_EXPLORE = 0.5
SCORE_COSTS: dict[str, tuple[int, int]] = {
    "fast": (4, 1),
    "standard": (8, 2),
    "careful": (16, 4),
}
"""The Scores dock's cost settings: (timesteps, noises) of each score's fixed draws."""
DEFAULT_COST = "standard"

Cost = tuple[int, int]


def cost_text(cost: Cost) -> str:
    timesteps, noises = cost
    return f"{timesteps}×{noises}"


def evaluations_per_image(cost: Cost) -> int:
    """UNet evaluations one score costs: each draw with the prompt and without it."""
    timesteps, noises = cost
    return timesteps * noises * 2


def cost_of(score: VersionScores) -> Cost:
    return (score.setting.timesteps, score.setting.noises)


class TreeScores(Mapping[str, VersionScores]):
    """Version id → :class:`~studio.document.scores.VersionScores`, read live from the
    tree (which stores them in the project): only versions that have scores."""

    def __init__(self, tree: VersionTree) -> None:
        self._tree = tree

    def __getitem__(self, version_id: str) -> VersionScores:
        scores = self._tree.scores(version_id) if version_id in self._tree else None
        if scores is None:
            raise KeyError(version_id)
        return scores

    def __iter__(self) -> Iterator[str]:
        return (v.id for v in self._tree.versions() if v.scores is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class ScoreGroup:
    """Versions that one Score job scores together: same prompt, same model."""

    prompt: str
    model: str
    version_ids: tuple[str, ...]
    items: tuple[np.ndarray | bytes, ...]


def score_groups(tree: VersionTree, version_ids: Sequence[str]) -> list[ScoreGroup]:
    """What to send for ``version_ids``: each version's result image, or its last step's
    checkpoint bytes when it has none (a partial version's x0-hat is scored), grouped by
    prompt and model, since fidelity is measured against the version's own prompt.
    Versions with no step yet are left out."""
    groups: dict[tuple[str, str], list[tuple[str, np.ndarray | bytes]]] = {}
    for version_id in dict.fromkeys(version_ids):
        if version_id not in tree:
            continue
        version = tree.get(version_id)
        result = tree.result(version_id)
        if result is not None:
            item: np.ndarray | bytes = result
        else:
            last = tree.last_step(version_id)
            if last is None:
                continue
            item = last.checkpoint
        key = (version.recipe.prompt, version.recipe.model)
        groups.setdefault(key, []).append((version_id, item))
    return [
        ScoreGroup(prompt, model, tuple(v for v, _ in members), tuple(i for _, i in members))
        for (prompt, model), members in groups.items()
    ]


def cost_groups(
    scores: Mapping[str, VersionScores], version_ids: Sequence[str], cost: Cost | None = None
) -> list[list[str]]:
    """The scored ones of ``version_ids`` by the cost that produced their scores, each
    group in the given order: those at ``cost`` first, then the others, costliest first.
    Scores at different costs are not comparable, so each group is ranked on its own."""
    groups: dict[Cost, list[str]] = {}
    for vid in version_ids:
        if vid in scores:
            groups.setdefault(cost_of(scores[vid]), []).append(vid)
    keys = sorted(groups, key=lambda c: (c != cost, -evaluations_per_image(c), c))
    return [groups[c] for c in keys]


def ordered(
    scores: Mapping[str, VersionScores],
    version_ids: Sequence[str],
    key: str,
    explore: float,
    cost: Cost | None = None,
) -> list[str]:
    """The scored ones of ``version_ids``, best first: by fidelity, by novelty, or by the
    combined score at the ``explore`` mix (:func:`studio.taste.ranking`). Versions scored
    at different costs are ranked within their cost only, ``cost``'s first (see
    :func:`cost_groups`), never in one ranking."""
    if key not in SORT_KEYS:
        raise ValueError(f"Sort by one of {', '.join(SORT_KEYS)}, not {key!r}.")
    return [
        vid
        for group in cost_groups(scores, version_ids, cost)
        for vid in _ranked(scores, group, key, explore)
    ]


def _ranked(
    scores: Mapping[str, VersionScores], scored: Sequence[str], key: str, explore: float
) -> list[str]:
    fidelity = [scores[vid].fidelity for vid in scored]
    novelty = [scores[vid].novelty for vid in scored]
    if key == "fidelity":
        order = sorted(range(len(scored)), key=lambda i: -fidelity[i])
    elif key == "novelty":
        order = sorted(range(len(scored)), key=lambda i: -novelty[i])
    else:
        order = taste.ranking(fidelity, novelty, explore)
    return [scored[i] for i in order]


def plugin_names(scores: Mapping[str, VersionScores]) -> list[str]:
    """The names of the scorer plug-ins any version has a value of, sorted."""
    return sorted({p.name for score in scores.values() for p in score.plugins})


def plugin_text(score: VersionScores) -> str:
    """A version's plug-in values in a line ("clip 27.3 · aesthetic 5.1"), "" when none."""
    return " · ".join(f"{p.name} {p.value:.1f}" for p in score.plugins)


def plugin_ordered(
    scores: Mapping[str, VersionScores], version_ids: Sequence[str], name: str
) -> list[str]:
    """Those of ``version_ids`` with a value of plug-in ``name``, highest first (higher is
    better for every plug-in); a plug-in's value does not depend on the cost."""
    valued = [(vid, scores[vid].plugin(name)) for vid in version_ids if vid in scores]
    present = [(vid, value) for vid, value in valued if value is not None]
    return [vid for vid, _ in sorted(present, key=lambda pair: -pair[1])]


def panel_order(
    scores: Mapping[str, VersionScores],
    version_ids: Sequence[str],
    key: str,
    explore: float,
    cost: Cost | None = None,
) -> list[str]:
    """The Versions panel's rows for ``key`` (one of :data:`PANEL_ORDERS`): ``version_ids``
    as given for "created", else the scored ones best first (:func:`ordered`, the combined
    score ranked among every scored version) and the unscored after them, as given;
    ``plugin:<name>`` (:data:`PLUGIN_ORDER`) ranks by that plug-in's value the same way."""
    if key == "created":
        return list(version_ids)
    if key.startswith(PLUGIN_ORDER):
        best = plugin_ordered(scores, version_ids, key.removeprefix(PLUGIN_ORDER))
    else:
        best = ordered(scores, version_ids, key, explore, cost)
    ranked = set(best)
    return [*best, *(vid for vid in version_ids if vid not in ranked)]


class TasteState(QObject):
    """What the scores view shows (see the module docstring): ``version_ids`` on view
    (the last set asked to be scored), ``explore`` from 0 (exploit: most faithful first)
    to 1 (explore: most novel first) and ``sort_key``, one of :data:`SORT_KEYS`; and
    ``panel_key``, the Versions panel's order, one of :data:`PANEL_ORDERS` or a plug-in's
    ``plugin:<name>`` (creation order by default), which ranks at the same ``explore`` mix."""

    versions_changed = Signal()
    explore_changed = Signal(float)
    sort_key_changed = Signal(str)
    panel_key_changed = Signal(str)
    cost_changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.version_ids: tuple[str, ...] = ()
        self.explore = DEFAULT_EXPLORE
        self.sort_key = "combined"
        self.panel_key = "created"
        self.cost_key = DEFAULT_COST
        """Which of :data:`SCORE_COSTS` "Score these" uses; rankings lead with its scores."""

    @property
    def cost(self) -> Cost:
        return SCORE_COSTS[self.cost_key]

    def set_cost(self, key: str) -> None:
        if key not in SCORE_COSTS:
            raise ValueError(f"Score at one of {', '.join(SCORE_COSTS)}, not {key!r}.")
        if key != self.cost_key:
            self.cost_key = key
            self.cost_changed.emit(key)

    def set_versions(self, version_ids: Sequence[str]) -> None:
        version_ids = tuple(dict.fromkeys(version_ids))
        if version_ids != self.version_ids:
            self.version_ids = version_ids
            self.versions_changed.emit()

    def forget(self, version_id: str) -> None:
        if version_id in self.version_ids:
            self.set_versions([v for v in self.version_ids if v != version_id])

    def set_explore(self, explore: float) -> None:
        explore = max(0.0, min(1.0, float(explore)))
        if explore != self.explore:
            self.explore = explore
            self.explore_changed.emit(explore)

    def set_sort_key(self, key: str) -> None:
        if key not in SORT_KEYS:
            raise ValueError(f"Sort by one of {', '.join(SORT_KEYS)}, not {key!r}.")
        if key != self.sort_key:
            self.sort_key = key
            self.sort_key_changed.emit(key)

    def set_panel_key(self, key: str) -> None:
        if key not in PANEL_ORDERS and not (
            key.startswith(PLUGIN_ORDER) and len(key) > len(PLUGIN_ORDER)
        ):
            raise ValueError(
                f"Order the versions by one of {', '.join(PANEL_ORDERS)}, not {key!r}."
            )
        if key != self.panel_key:
            self.panel_key = key
            self.panel_key_changed.emit(key)
