"""A version's taste scores as the document keeps them: the numbers and what produced them.

Scores are computed on the worker (:mod:`studio.engine.scoring`), put on a version
with :meth:`~studio.document.versions.VersionTree.set_scores`, stored in the
project file and read back on open. They are recomputed only when asked: a view
compares :attr:`VersionScores.setting` with the setting it would use. Scorer plug-in
values (:mod:`studio.engine.plugins`) ride on the same record, each with the setting of
the plug-in that produced it (:class:`PluginValue`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from studio.document.store.schema import ScoreRecord
from studio.protocol import ScoreRow, ScoreSetting


@dataclass(frozen=True)
class PluginValue:
    """One scorer plug-in's value for a version: ``name`` (``clip``, ``aesthetic``; higher
    is better), ``value`` and ``setting``, what produced it (see
    :func:`studio.engine.plugins.plugin_setting`)."""

    name: str
    value: float
    setting: str


@dataclass(frozen=True, eq=False)
class VersionScores:
    """One version's scores (see :class:`~studio.protocol.ScoreRow`) and their ``setting``.

    ``context_novelty`` is relative to the set it was scored with (a brood, a grid),
    None when it was scored alone; ``features`` (float32) let it be recomputed
    against another set. ``plugins``: the scorer plug-in values, one per name, by name."""

    setting: ScoreSetting
    fidelity: float
    novelty: float
    novelty_unconditional: float | None = None
    context_novelty: float | None = None
    features: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    plugins: tuple[PluginValue, ...] = ()

    @classmethod
    def from_row(
        cls,
        row: ScoreRow,
        setting: ScoreSetting,
        context_novelty: float | None = None,
        plugin_settings: Mapping[str, str] | None = None,
        kept: tuple[PluginValue, ...] = (),
    ) -> VersionScores:
        """The row's scores; its plug-in values with their ``plugin_settings`` (by name),
        and the ``kept`` values (an earlier score's) of plug-ins the row has none of: a
        plug-in's value does not depend on the cost, so it is recomputed only when asked."""
        settings = plugin_settings or {}
        fresh = {
            p.name: PluginValue(p.name, float(p.value), settings.get(p.name, ""))
            for p in row.plugin_scores
        }
        plugins = {p.name: p for p in kept} | fresh
        return cls(
            setting,
            float(row.fidelity),
            float(row.novelty),
            float(row.novelty_unconditional),
            None if context_novelty is None else float(context_novelty),
            np.asarray(row.features, np.float32).ravel(),
            tuple(plugins[name] for name in sorted(plugins)),
        )

    def plugin(self, name: str) -> float | None:
        """The value of plug-in ``name``, or None when it has none."""
        return next((p.value for p in self.plugins if p.name == name), None)

    def to_record(self, version_id: str) -> ScoreRecord:
        return ScoreRecord(
            version_id,
            json.dumps(dataclasses.asdict(self.setting), sort_keys=True),
            self.fidelity,
            self.novelty,
            self.novelty_unconditional,
            self.context_novelty,
            np.ascontiguousarray(self.features, dtype="<f4").tobytes(),
            tuple((p.name, p.value, p.setting) for p in self.plugins),
        )

    @classmethod
    def from_record(cls, record: ScoreRecord) -> VersionScores:
        """Raises ValueError when the stored setting is not a setting's JSON."""
        try:
            fields = json.loads(record.setting_json)
            setting = ScoreSetting(**fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The stored score setting cannot be read ({exc}).") from None
        return cls(
            setting,
            float(record.fidelity),
            float(record.novelty),
            record.novelty_unconditional,
            record.context_novelty,
            np.frombuffer(record.features, dtype="<f4").astype(np.float32),
            tuple(
                PluginValue(name, float(value), setting) for name, value, setting in record.plugins
            ),
        )
