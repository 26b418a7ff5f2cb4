"""The layout of a ``.studio`` file: its tables, its version, and the records read from it.

The schema has a version (``PRAGMA user_version``). Version 2 added the
lineage of bred versions (``version_parents``: every parent with its weight, and
``versions.generation``) and stored scores (``scores``). Version 3 added
``images``: init images and masks, PNG, keyed by the content hash a recipe names
them by (``studio.engine.img2img.image_hash``, the sha256 of their pixels); the
canvas's current mask is the one ``meta`` names under ``canvas_mask``; and
``plugin_scores``: a version's scorer plug-in values (CLIP score, an aesthetic head),
each with the setting that produced it, stored beside its ``scores`` row. An older file
is upgraded by :mod:`~studio.document.store.migration` after a backup copy is
written next to it; a newer file is refused by
:func:`~studio.document.store.checks.check_project_file` without being touched.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from studio.engine.recipe import Recipe

SCHEMA_VERSION = 3
APPLICATION_ID = 0x4E535444  # "NSTD": marks the file as ours in the SQLite header
APP_NAME = "noise-studio"
SUFFIX = ".studio"
TABLES = frozenset(
    {"meta", "versions", "steps", "layers", "version_parents", "scores", "images", "plugin_scores"}
)

SCHEMA = f"""
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE versions (
    id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES versions(id) ON DELETE CASCADE,
    branch_step INTEGER,
    name TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    created REAL NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0,
    partial INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    result_png BLOB,
    generation INTEGER NOT NULL DEFAULT 0,
    CHECK ((parent_id IS NULL) = (branch_step IS NULL))
);
CREATE INDEX versions_by_parent ON versions(parent_id);

-- A rowid table: SQLite 3.40's quick_check reports NULLs in a WITHOUT ROWID table
-- whose key is not its first columns, which would refuse every bred project.
CREATE TABLE version_parents (
    version_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    parent_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    weight REAL NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (version_id, position)
);
CREATE INDEX version_parents_by_parent ON version_parents(parent_id);

CREATE TABLE scores (
    version_id TEXT PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    setting_json TEXT NOT NULL,
    fidelity REAL NOT NULL,
    novelty REAL NOT NULL,
    novelty_unconditional REAL,
    context_novelty REAL,
    features BLOB NOT NULL
);

CREATE TABLE steps (
    version_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    total INTEGER NOT NULL,
    timestep REAL NOT NULL,
    sigma REAL,
    preview_x0 BLOB NOT NULL,
    preview_xt BLOB NOT NULL,
    checkpoint BLOB NOT NULL,
    PRIMARY KEY (version_id, idx)
);

CREATE TABLE layers (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    visible INTEGER NOT NULL DEFAULT 1,
    opacity REAL NOT NULL DEFAULT 1.0,
    blend TEXT NOT NULL DEFAULT 'normal',
    offset_x INTEGER NOT NULL DEFAULT 0,
    offset_y INTEGER NOT NULL DEFAULT 0,
    version_id TEXT REFERENCES versions(id) ON DELETE SET NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    pixels BLOB NOT NULL
);

CREATE TABLE images (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'mask')),
    png BLOB NOT NULL
);

CREATE TABLE plugin_scores (
    version_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    setting TEXT NOT NULL,
    PRIMARY KEY (version_id, name)
);

PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""
# ``generation`` sits after ``result_png`` because that is where SQLite's ALTER TABLE
# ADD COLUMN puts it when a version-1 file is upgraded: a migrated file and a new one
# have the same schema text, which the open checks compare exactly.
# Column order matters: small columns first, blobs last, and the big checkpoint
# after the small previews, so that listing steps or fetching a preview never
# walks a checkpoint's overflow pages.

LAYER_FIELDS = ("name", "visible", "opacity", "blend", "offset_x", "offset_y", "version_id")


def create_schema(conn: sqlite3.Connection) -> None:
    """Lay out an empty database as a project of this schema version."""
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.executescript(f"BEGIN; {SCHEMA} COMMIT;")
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        [
            ("app", APP_NAME),
            ("schema_version", str(SCHEMA_VERSION)),
            ("created", repr(time.time())),
        ],
    )


@dataclass(frozen=True)
class VersionRecord:
    """One version as stored; its steps and result image are read on demand."""

    id: str
    parent_id: str | None
    branch_step: int | None
    name: str
    recipe_json: str
    created: float
    finished: bool = False
    partial: bool = False
    has_result: bool = False
    bred_from: tuple[tuple[str, float], ...] = ()
    """A bred version's parents (version id, weight), in order; the first gave the settings."""
    generation: int = 0

    def recipe(self, notes: list[str] | None = None) -> Recipe:
        """The version's recipe; a prompt over the cap is cut, with a sentence in ``notes``."""
        return Recipe.from_json(self.recipe_json, notes)


@dataclass(frozen=True)
class LayerRecord:
    """A layer's properties; ``pixels`` is PNG (RGBA) bytes."""

    id: str
    position: int
    name: str
    visible: bool
    opacity: float
    blend: str
    offset_x: int
    offset_y: int
    version_id: str | None
    pixels: bytes = field(repr=False)


@dataclass(frozen=True, eq=False)
class ScoreRecord:
    """A version's stored scores and what produced them (``setting_json``, a
    :class:`~studio.protocol.ScoreSetting` as JSON); ``features`` is float32 bytes."""

    version_id: str
    setting_json: str
    fidelity: float
    novelty: float
    novelty_unconditional: float | None
    context_novelty: float | None
    features: bytes = field(repr=False)
    plugins: tuple[tuple[str, float, str], ...] = ()
    """Scorer plug-in values as (name, value, setting): the plug-in's name, its value
    and what produced it (its folder and a hash of its config)."""


@dataclass(frozen=True)
class ProjectSnapshot:
    """What opening a document needs, read in one consistent transaction.

    ``step_indices`` lists each version's own stored steps; ``last_previews``
    holds the x0-hat preview (PNG) of each version's last stored step, for a
    thumbnail. Step records and results are not in it.
    """

    versions: list[VersionRecord]
    step_indices: dict[str, list[int]]
    last_previews: dict[str, bytes]
    layers: list[LayerRecord]
    scores: dict[str, ScoreRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class ProjectSummary:
    """What a project holds, read without opening it for writing."""

    schema_version: int
    version_count: int
    layer_count: int
