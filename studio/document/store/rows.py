"""The SQL the store runs: reading records out of rows, and the small writes edits share.

Deletes are soft so that undo can bring a version back with all its steps:
``deleted`` is 0 for live rows, otherwise the id of the deletion that hid them.
Rows of deleted versions are still readable by id (an undo may need them
before it restores them); listings show live rows only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from studio.document.store.errors import not_found
from studio.document.store.schema import (
    LayerRecord,
    ProjectSnapshot,
    ScoreRecord,
    VersionRecord,
)

STEP_COLUMNS = "total, timestep, sigma, preview_x0, preview_xt, checkpoint"


def has_lineage(conn: sqlite3.Connection) -> bool:
    """Whether the file has version 2's tables (a version-1 file read before its upgrade has not)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0]) >= 2


def has_images(conn: sqlite3.Connection) -> bool:
    """Whether the file has version 3's tables, ``images`` and ``plugin_scores`` (an older
    file read before its upgrade has not, and holds no init images, masks or plug-in values)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0]) >= 3


def read_versions(conn: sqlite3.Connection) -> list[VersionRecord]:
    """Live versions, branch parents before their children, each level oldest first.

    A bred version's parents (``bred_from``) are the live ones, in their order."""
    lineage = has_lineage(conn)
    generation = "generation" if lineage else "0"
    # typeof() reads only the record header; "result_png IS NOT NULL" would load every result.
    rows = conn.execute(
        "SELECT id, parent_id, branch_step, name, recipe_json, created, finished, partial,"
        f" typeof(result_png) != 'null', {generation} FROM versions WHERE deleted = 0"
        " ORDER BY created, rowid"
    ).fetchall()
    bred: dict[str, list[tuple[str, float]]] = {}
    if lineage:
        for version_id, parent_id, weight in conn.execute(
            "SELECT e.version_id, e.parent_id, e.weight FROM version_parents e"
            " JOIN versions p ON p.id = e.parent_id AND p.deleted = 0"
            " ORDER BY e.version_id, e.position"
        ):
            bred.setdefault(version_id, []).append((parent_id, float(weight)))
    records = [
        VersionRecord(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            bool(r[6]),
            bool(r[7]),
            bool(r[8]),
            tuple(bred.get(r[0], ())),
            int(r[9]),
        )
        for r in rows
    ]
    by_id = {r.id: r for r in records}
    ordered: list[VersionRecord] = []
    placed: set[str] = set()
    for record in records:
        # Walk up to the first placed ancestor, then place that line top-down (no recursion:
        # a lineage may be thousands deep). The open checks refuse loops; ``line`` stops one.
        line: list[VersionRecord] = []
        seen: set[str] = set()
        node: VersionRecord | None = record
        while node is not None and node.id not in placed and node.id not in seen:
            seen.add(node.id)
            line.append(node)
            node = by_id.get(node.parent_id) if node.parent_id is not None else None
        for item in reversed(line):
            placed.add(item.id)
            ordered.append(item)
    return ordered


def read_step_indices(conn: sqlite3.Connection, version_id: str) -> list[int]:
    rows = conn.execute("SELECT idx FROM steps WHERE version_id = ? ORDER BY idx", (version_id,))
    return [r[0] for r in rows]


def read_snapshot(conn: sqlite3.Connection) -> ProjectSnapshot:
    """Versions, their step indices, their last step's x0 preview, and layers (one transaction)."""
    conn.execute("BEGIN")
    try:
        versions = read_versions(conn)
        indices: dict[str, list[int]] = {v.id: [] for v in versions}
        # Only (version_id, idx): the primary key's index covers it, no step row is read.
        for version_id, index in conn.execute(
            "SELECT version_id, idx FROM steps ORDER BY version_id, idx"
        ):
            if version_id in indices:
                indices[version_id].append(index)
        previews = {
            version_id: png
            for version_id, png in conn.execute(
                "SELECT s.version_id, s.preview_x0 FROM steps s"
                " JOIN (SELECT version_id, max(idx) AS idx FROM steps GROUP BY version_id) last"
                " ON s.version_id = last.version_id AND s.idx = last.idx"
            )
            if version_id in indices
        }
        layers = read_layers(conn)
        scores = read_scores(conn) if has_lineage(conn) else {}
    finally:
        conn.execute("COMMIT")
    return ProjectSnapshot(versions, indices, previews, layers, scores)


def read_scores(conn: sqlite3.Connection) -> dict[str, ScoreRecord]:
    """The stored scores of live versions, by version id, with their plug-in values
    (a version-2 file, read before its upgrade, has none)."""
    plugins: dict[str, list[tuple[str, float, str]]] = {}
    if has_images(conn):
        for version_id, name, value, setting in conn.execute(
            "SELECT version_id, name, value, setting FROM plugin_scores ORDER BY version_id, name"
        ):
            plugins.setdefault(version_id, []).append((name, float(value), setting))
    return {
        r[0]: ScoreRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(plugins.get(r[0], ())))
        for r in conn.execute(
            "SELECT s.version_id, s.setting_json, s.fidelity, s.novelty,"
            " s.novelty_unconditional, s.context_novelty, s.features"
            " FROM scores s JOIN versions v ON v.id = s.version_id AND v.deleted = 0"
        )
    }


def read_layers(conn: sqlite3.Connection) -> list[LayerRecord]:
    rows = conn.execute(
        "SELECT id, position, name, visible, opacity, blend, offset_x, offset_y, version_id, pixels"
        " FROM layers WHERE deleted = 0 ORDER BY position, rowid"
    )
    return [
        LayerRecord(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6], r[7], r[8], r[9]) for r in rows
    ]


def live_layer_ids(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute("SELECT id FROM layers WHERE deleted = 0 ORDER BY position, rowid")
    ]


def write_positions(conn: sqlite3.Connection, ids: Iterable[str]) -> None:
    conn.executemany(
        "UPDATE layers SET position = ? WHERE id = ? AND position != ?",
        [(i, layer_id, i) for i, layer_id in enumerate(ids)],
    )


def next_deletion_id(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT max((SELECT coalesce(max(deleted), 0) FROM versions),"
        " (SELECT coalesce(max(deleted), 0) FROM layers))"
    ).fetchone()
    return int(row[0]) + 1


def expect_one(cursor: sqlite3.Cursor, what: str = "That item") -> None:
    if cursor.rowcount == 0:
        raise not_found(what)


def purge_deleted(conn: sqlite3.Connection) -> None:
    """Remove hidden rows for good (when no undo stack can restore them any more)."""
    conn.execute("DELETE FROM layers WHERE deleted != 0")
    # Children of a deleted version are deleted with it, so CASCADE removes only hidden rows.
    conn.execute("DELETE FROM versions WHERE deleted != 0")
    conn.execute("PRAGMA incremental_vacuum")
