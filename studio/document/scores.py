"""A version's taste scores as the document keeps them: the numbers and what produced them.

Scores are computed on the worker (:mod:`studio.engine.scoring`), put on a version
with :meth:`~studio.document.versions.VersionTree.set_scores`, stored in the
project file and read back on open. They are recomputed only when asked: a view
compares :attr:`VersionScores.setting` with the setting it would use.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from studio.document.store.schema import ScoreRecord
from studio.protocol import ScoreRow, ScoreSetting


@dataclass(frozen=True, eq=False)
class VersionScores:
    """One version's scores (see :class:`~studio.protocol.ScoreRow`) and their ``setting``.

    ``context_novelty`` is relative to the set it was scored with (a brood, a grid),
    None when it was scored alone; ``features`` (float32) let it be recomputed
    against another set."""

    setting: ScoreSetting
    fidelity: float
    novelty: float
    novelty_unconditional: float | None = None
    context_novelty: float | None = None
    features: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)

    @classmethod
    def from_row(
        cls, row: ScoreRow, setting: ScoreSetting, context_novelty: float | None = None
    ) -> VersionScores:
        return cls(
            setting,
            float(row.fidelity),
            float(row.novelty),
            float(row.novelty_unconditional),
            None if context_novelty is None else float(context_novelty),
            np.asarray(row.features, np.float32).ravel(),
        )

    def to_record(self, version_id: str) -> ScoreRecord:
        return ScoreRecord(
            version_id,
            json.dumps(dataclasses.asdict(self.setting), sort_keys=True),
            self.fidelity,
            self.novelty,
            self.novelty_unconditional,
            self.context_novelty,
            np.ascontiguousarray(self.features, dtype="<f4").tobytes(),
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
        )
