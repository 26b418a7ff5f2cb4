"""Upgrading an older ``.studio`` file to this schema version, after a backup copy.

Each older version keeps its DDL here, frozen as it was released, so the open
checks can hold an old file to its own exact schema before anything is changed,
and so tests can build an old file the way the old code did. An upgrade step
runs in one transaction on the writer's connection; before it, a complete copy
of the file as it was is written next to it with SQLite's backup API
(``name.v1-backup.studio``), never over an existing file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from studio.document.store import files
from studio.document.store.errors import ProjectError, ProjectErrorReason
from studio.document.store.schema import APPLICATION_ID, SCHEMA, SCHEMA_VERSION, SUFFIX, TABLES

SCHEMA_V1 = f"""
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
    CHECK ((parent_id IS NULL) = (branch_step IS NULL))
);
CREATE INDEX versions_by_parent ON versions(parent_id);

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

PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = 1;
"""
"""Version 1's DDL exactly as it was released (the code before bred lineage and scores)."""

SCHEMA_V2 = f"""
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

PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = 2;
"""
"""Version 2's DDL exactly as it was released (the code before init images and masks)."""

SCHEMAS: dict[int, str] = {1: SCHEMA_V1, 2: SCHEMA_V2, SCHEMA_VERSION: SCHEMA}
"""Every schema version a file may have and be opened (older ones are upgraded)."""

TABLES_V1 = frozenset({"meta", "versions", "steps", "layers"})
TABLES_V2 = TABLES_V1 | {"version_parents", "scores"}
TABLES_BY_VERSION: dict[int, frozenset[str]] = {1: TABLES_V1, 2: TABLES_V2, SCHEMA_VERSION: TABLES}

_UPGRADE_1_TO_2 = (
    "ALTER TABLE versions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE version_parents (
    version_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    parent_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    weight REAL NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (version_id, position)
)""",
    "CREATE INDEX version_parents_by_parent ON version_parents(parent_id)",
    """CREATE TABLE scores (
    version_id TEXT PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    setting_json TEXT NOT NULL,
    fidelity REAL NOT NULL,
    novelty REAL NOT NULL,
    novelty_unconditional REAL,
    context_novelty REAL,
    features BLOB NOT NULL
)""",
)


def _upgrade_1_to_2(conn: sqlite3.Connection) -> None:
    for statement in _UPGRADE_1_TO_2:
        conn.execute(statement)


_UPGRADE_2_TO_3 = (
    """CREATE TABLE images (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'mask')),
    png BLOB NOT NULL
)""",
    """CREATE TABLE plugin_scores (
    version_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    setting TEXT NOT NULL,
    PRIMARY KEY (version_id, name)
)""",
)


def _upgrade_2_to_3(conn: sqlite3.Connection) -> None:
    for statement in _UPGRADE_2_TO_3:
        conn.execute(statement)


UPGRADES: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _upgrade_1_to_2,
    2: _upgrade_2_to_3,
}
"""``UPGRADES[n]`` turns a version-``n`` file into version ``n + 1``, inside a transaction."""


def create_v1_schema(conn: sqlite3.Connection) -> None:
    """Lay out an empty database as version 1 did (for tests of the upgrade)."""
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.executescript(f"BEGIN; {SCHEMA_V1} COMMIT;")
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        [("app", "noise-studio"), ("schema_version", "1"), ("created", "0.0")],
    )


def create_v2_schema(conn: sqlite3.Connection) -> None:
    """Lay out an empty database as version 2 did (for tests of the upgrade)."""
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.executescript(f"BEGIN; {SCHEMA_V2} COMMIT;")
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        [("app", "noise-studio"), ("schema_version", "2"), ("created", "0.0")],
    )


def backup_path(path: Path, version: int) -> Path:
    """A free name next to ``path`` for its copy before upgrading from ``version``."""
    stem = path.stem if path.suffix == SUFFIX else path.name
    candidate = path.with_name(f"{stem}.v{version}-backup{SUFFIX}")
    number = 2
    while candidate.exists() or files.sidecars_exist(candidate):
        candidate = path.with_name(f"{stem}.v{version}-backup-{number}{SUFFIX}")
        number += 1
    return candidate


def migrate(conn: sqlite3.Connection, path: Path) -> Path | None:
    """Upgrade the file at ``conn`` (read-write, autocommit) to this schema version.

    Writes the backup copy first (raising :class:`ProjectError`, with nothing
    changed, if it cannot be written), then runs every upgrade step in one
    transaction. Returns the backup's path, or None when the file was current.
    """
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return None
    if version not in UPGRADES:
        raise ProjectError(
            f"“{path.name}” has file format {version}, which this version cannot upgrade.",
            ProjectErrorReason.NEWER_SCHEMA
            if version > SCHEMA_VERSION
            else ProjectErrorReason.CORRUPT,
        )
    backup = backup_path(path, version)
    files.backup(conn, backup)
    conn.execute("BEGIN IMMEDIATE")
    try:
        while version < SCHEMA_VERSION:
            UPGRADES[version](conn)
            version += 1
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return backup
