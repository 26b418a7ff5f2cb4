"""Read-only checks of a project file: is it ours, whole, sound, and free to write.

Opening is all or nothing, so everything that could make opening fail half-way
is checked here first: the schema is exactly ours (no trigger or view we did
not create), the version graph has every parent and no cycle, the counts are
within bounds, and every stored image's PNG header is within the pixel cap
(headers only, read with SQLite's blob I/O, so the check does not grow with the
size of the images). Nothing here writes to the file or creates files beside
it, so a file that is refused is left exactly as it was.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import stat
from pathlib import Path

from studio.document.imageio import MAX_IMPORT_PIXELS
from studio.document.store.connections import connect_probe
from studio.document.store.errors import ProjectError, ProjectErrorReason, project_error
from studio.document.store.files import journal_exists
from studio.document.store.lock import holder
from studio.document.store.migration import SCHEMAS, TABLES_BY_VERSION
from studio.document.store.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    ProjectSummary,
)
from studio.engine.recipe import MAX_STEPS

R = ProjectErrorReason
SQLITE_MAGIC = b"SQLite format 3\x00"
FULL_CHECK_BYTES = 1 << 30
"""Files up to this size get a full ``quick_check`` when opened; bigger ones a lighter one."""
MAX_VERSIONS = 100_000
MAX_LAYERS = 1_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What pages of another database make of ours when read through its -wal. Content
# problems (INVALID, FOREIGN_SCHEMA) are not among them: a -wal left by our own crash
# may hold them, newer than the main file, and setting it aside would hide them.
_JOURNAL_SYMPTOMS = (R.CORRUPT, R.NOT_A_PROJECT, R.TRUNCATED, R.IO)


def check_project_file(path: str | os.PathLike[str], *, held_elsewhere_ok: bool = False) -> int:
    """Check that ``path`` is a project this version can open for writing; returns its schema version.

    Reads only: the header bytes directly, then a read-only connection for the
    application id, schema version, ``PRAGMA quick_check``, the schema, the
    version graph, the counts and the stored images' headers (a file over
    FULL_CHECK_BYTES: all but the step previews, checked as each is read); last, whether
    another instance holds the file (``IN_USE``, unless ``held_elsewhere_ok``).
    A ``-wal`` that makes a sound file look damaged is ``FOREIGN_JOURNAL``.
    Raises :class:`ProjectError` with one sentence on the first problem.
    """
    path = Path(path)
    label = f"“{path.name}”"
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ProjectError(f"{label} does not exist.", R.MISSING) from None
    except OSError as exc:
        raise ProjectError(f"{label} cannot be read ({exc.strerror or exc}).", R.IO) from None
    if not stat.S_ISREG(st.st_mode):
        raise ProjectError(f"{label} is not a file.", R.NOT_A_PROJECT)
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise ProjectError(f"{label} cannot be read ({exc.strerror or exc}).", R.IO) from None
    _check_header(label, header, st.st_size, journal=journal_exists(path))
    try:
        schema = _check_through(path, label, st.st_size, ignore_journal=False)
    except ProjectError as exc:
        if exc.reason in _JOURNAL_SYMPTOMS and journal_exists(path):
            try:
                _check_through(path, label, st.st_size, ignore_journal=True)
            except ProjectError:
                raise exc from None
            raise ProjectError(
                f"{label} has a journal file (“{path.name}-wal”) that does not belong to it;"
                " the file itself is sound and can be opened without it.",
                R.FOREIGN_JOURNAL,
            ) from None
        raise
    who = None if held_elsewhere_ok else holder(path)
    if who is not None:
        raise ProjectError(f"{label} is open in another Noise Studio window ({who}).", R.IN_USE)
    if _is_read_only(path, st):
        raise ProjectError(
            f"{label} is read-only; use Save As to keep working on a copy, or make the file writable.",
            R.READ_ONLY,
        )
    return schema


def _check_through(path: Path, label: str, size: int, *, ignore_journal: bool) -> int:
    try:
        conn = connect_probe(path, ignore_journal=ignore_journal)
    except sqlite3.Error as exc:
        raise project_error(exc, path, "open") from None
    try:
        return _check_contents(label, conn, size)
    except sqlite3.Error as exc:
        raise project_error(exc, path, "open") from None
    except MemoryError:
        raise ProjectError(f"{label} is too large to check in the memory left.", R.IO) from None
    finally:
        conn.close()


def peek(path: str | os.PathLike[str]) -> ProjectSummary:
    """Check ``path`` like ``ProjectStore.open`` (read-only problems aside) and count its contents.

    Never writes to the file; raises :class:`ProjectError` for a file that
    cannot be opened.
    """
    path = Path(path)
    try:
        schema = check_project_file(path, held_elsewhere_ok=True)
    except ProjectError as exc:
        if exc.reason is not R.READ_ONLY:
            raise
        schema = SCHEMA_VERSION
    conn = connect_probe(path)
    try:
        versions = conn.execute("SELECT count(*) FROM versions WHERE deleted = 0").fetchone()[0]
        layers = conn.execute("SELECT count(*) FROM layers WHERE deleted = 0").fetchone()[0]
    except sqlite3.Error as exc:
        raise project_error(exc, path, "read") from None
    finally:
        conn.close()
    return ProjectSummary(schema, versions, layers)


def _check_header(label: str, header: bytes, size: int, *, journal: bool) -> None:
    """Check the header bytes against the file's size.

    With a ``-wal`` beside it, a file may legitimately be shorter than its
    header says: a checkpoint killed after writing page 1 but before the pages
    that extend the file leaves exactly that, and the journal still holds them.
    The page count is then left to SQLite's own checks.
    """
    if not header:
        raise ProjectError(
            f"{label} is empty, so it is not a Noise Studio project.", R.NOT_A_PROJECT
        )
    if not header.startswith(SQLITE_MAGIC) and not (
        len(header) < len(SQLITE_MAGIC) and SQLITE_MAGIC.startswith(header)
    ):
        raise ProjectError(
            f"{label} is not a Noise Studio project (it is not a database).", R.NOT_A_PROJECT
        )
    if len(header) < 100:
        raise ProjectError(f"{label} is truncated: the file ends inside its header.", R.TRUNCATED)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise ProjectError(f"{label} is damaged: its header is invalid.", R.CORRUPT)
    change_counter = header[24:28]
    header_pages = int.from_bytes(header[28:32], "big")
    if size % page_size or (
        not journal
        and header[92:96] == change_counter
        and header_pages
        and size < header_pages * page_size
    ):
        raise ProjectError(
            f"{label} is truncated: it is shorter than its header says.", R.TRUNCATED
        )
    if int.from_bytes(header[68:72], "big") not in (0, APPLICATION_ID):
        raise ProjectError(
            f"{label} is a database of another program, not a Noise Studio project.",
            R.NOT_A_PROJECT,
        )


def _check_contents(label: str, conn: sqlite3.Connection, size: int) -> int:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    schema: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id != APPLICATION_ID:
        raise ProjectError(
            f"{label} is a database of another program, not a Noise Studio project.",
            R.NOT_A_PROJECT,
        )
    if schema > SCHEMA_VERSION:
        raise ProjectError(
            f"{label} was saved by a newer version of Noise Studio (file format {schema}); "
            "update the app to open it.",
            R.NEWER_SCHEMA,
        )
    if schema not in SCHEMAS:
        raise ProjectError(f"{label} is damaged: it has no file format version.", R.CORRUPT)
    problems = quick_check(conn, size)
    if problems != ["ok"]:
        raise ProjectError(f"{label} is damaged ({problems[0]}).", R.CORRUPT)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if not TABLES_BY_VERSION[schema].issubset(tables):
        raise ProjectError(f"{label} is damaged: tables are missing.", R.CORRUPT)
    _check_schema(label, conn, schema)
    _check_counts(label, conn, schema)
    _check_graph(label, conn, schema)
    _check_images(label, conn, schema, steps_too=size <= FULL_CHECK_BYTES)
    return schema


def _normal_sql(sql: str | None) -> str | None:
    return None if sql is None else re.sub(r"\s+", " ", sql).strip()


@functools.cache
def expected_schema(version: int = SCHEMA_VERSION) -> frozenset[tuple[str, str, str, str | None]]:
    """Every SQL object a project of schema ``version`` has: (type, name, table, sql)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(SCHEMAS[version])
        return _schema_objects(conn)
    finally:
        conn.close()


def _schema_objects(conn: sqlite3.Connection) -> frozenset[tuple[str, str, str, str | None]]:
    return frozenset(
        (t, n, tbl, _normal_sql(sql))
        for t, n, tbl, sql in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema")
    )


def _check_schema(label: str, conn: sqlite3.Connection, version: int) -> None:
    # Triggers fire inside our own writes and views stand in for tables: a file's own
    # SQL could hang every save or drop what we write. Only our exact schema (of the
    # version the file says it has: an older one is upgraded after this) is opened.
    expected = expected_schema(version)
    actual = _schema_objects(conn)
    if actual == expected:
        return
    expected_names = {(t, n) for t, n, _, _ in expected}
    extra = sorted((t, n) for t, n, _, _ in actual if (t, n) not in expected_names)
    if extra:
        kind, name = extra[0]
        raise ProjectError(
            f"{label} holds a {kind} (“{name}”) that Noise Studio did not create,"
            " so it is not opened.",
            R.FOREIGN_SCHEMA,
        )
    (kind, name, _, _) = sorted((e for e in expected - actual), key=lambda e: (e[0], e[1]))[0]
    raise ProjectError(
        f"{label} does not have the layout of a Noise Studio project ({kind} “{name}” differs),"
        " so it is not opened.",
        R.FOREIGN_SCHEMA,
    )


def _check_counts(label: str, conn: sqlite3.Connection, version: int) -> None:
    versions = conn.execute("SELECT count(*) FROM versions").fetchone()[0]
    layers = conn.execute("SELECT count(*) FROM layers").fetchone()[0]
    (steps,) = conn.execute(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM steps GROUP BY version_id)"
    ).fetchone()
    for count, limit, what in (
        (versions, MAX_VERSIONS, "versions"),
        (layers, MAX_LAYERS, "layers"),
        (steps, MAX_STEPS, "steps in one version"),
    ):
        if count > limit:
            raise ProjectError(
                f"{label} holds {count} {what}, more than Noise Studio opens ({limit}).", R.INVALID
            )
    bad = conn.execute(
        "SELECT (SELECT count(*) FROM versions WHERE typeof(id) != 'text'"
        "  OR typeof(parent_id) NOT IN ('text', 'null') OR typeof(recipe_json) != 'text'"
        "  OR typeof(result_png) NOT IN ('blob', 'null') OR typeof(branch_step) NOT IN ('integer', 'null')"
        "  OR branch_step < 0)"
        " + (SELECT count(*) FROM steps WHERE typeof(idx) != 'integer' OR idx < 0"
        "  OR typeof(preview_x0) != 'blob' OR typeof(preview_xt) != 'blob'"
        "  OR typeof(checkpoint) != 'blob')"
        " + (SELECT count(*) FROM layers WHERE typeof(id) != 'text' OR typeof(pixels) != 'blob')"
    ).fetchone()[0]
    if version >= 2:
        bad += conn.execute(
            "SELECT (SELECT count(*) FROM versions WHERE typeof(generation) != 'integer'"
            "  OR generation < 0)"
            " + (SELECT count(*) FROM version_parents WHERE typeof(version_id) != 'text'"
            "  OR typeof(parent_id) != 'text' OR typeof(weight) NOT IN ('real', 'integer')"
            "  OR typeof(position) != 'integer')"
            " + (SELECT count(*) FROM scores WHERE typeof(setting_json) != 'text'"
            "  OR typeof(features) != 'blob' OR length(features) % 4 != 0"
            "  OR typeof(fidelity) NOT IN ('real', 'integer')"
            "  OR typeof(novelty) NOT IN ('real', 'integer'))"
        ).fetchone()[0]
    if version >= 3:
        bad += conn.execute(
            "SELECT (SELECT count(*) FROM images WHERE typeof(hash) != 'text'"
            "  OR typeof(png) != 'blob')"
            " + (SELECT count(*) FROM plugin_scores WHERE typeof(version_id) != 'text'"
            "  OR typeof(name) != 'text' OR typeof(setting) != 'text'"
            "  OR typeof(value) NOT IN ('real', 'integer'))"
        ).fetchone()[0]
    if bad:
        raise ProjectError(
            f"{label} is damaged: {bad} rows hold values of the wrong kind.", R.INVALID
        )


def _check_graph(label: str, conn: sqlite3.Connection, version: int) -> None:
    parent: dict[str, str | None] = {}
    deleted: dict[str, bool] = {}
    for version_id, parent_id, gone in conn.execute("SELECT id, parent_id, deleted FROM versions"):
        parent[version_id] = parent_id
        deleted[version_id] = bool(gone)
    for version_id, parent_id in parent.items():
        if parent_id is None:
            continue
        if parent_id == version_id:
            raise ProjectError(f"{label} is damaged: a version is its own parent.", R.INVALID)
        if parent_id not in parent:
            raise ProjectError(f"{label} is damaged: a version's parent is missing.", R.INVALID)
        if deleted[parent_id] and not deleted[version_id]:
            raise ProjectError(f"{label} is damaged: a version's parent was deleted.", R.INVALID)
    # Every edge: the branch parent and, for a bred version, each of its parents. A bred
    # version may outlive a deleted parent (the edge goes when the parent is purged).
    edges: dict[str, list[str]] = {v: ([] if p is None else [p]) for v, p in parent.items()}
    if version >= 2:
        for version_id, parent_id in conn.execute(
            "SELECT version_id, parent_id FROM version_parents"
        ):
            if version_id not in parent or parent_id not in parent:
                raise ProjectError(
                    f"{label} is damaged: a bred version's parent is missing.", R.INVALID
                )
            if parent_id == version_id:
                raise ProjectError(f"{label} is damaged: a version is its own parent.", R.INVALID)
            edges[version_id].append(parent_id)
    # Iterative depth-first search (a lineage may be thousands deep): grey = on the path.
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        on_path: set[str] = {start}
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, next_edge = stack[-1]
            if next_edge == len(edges[node]):
                stack.pop()
                on_path.discard(node)
                done.add(node)
                continue
            stack[-1] = (node, next_edge + 1)
            up = edges[node][next_edge]
            if up in on_path:
                raise ProjectError(
                    f"{label} is damaged: its versions descend from each other in a loop.",
                    R.INVALID,
                )
            if up not in done:
                on_path.add(up)
                stack.append((up, 0))
    if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
        raise ProjectError(f"{label} is damaged: some rows point at missing rows.", R.INVALID)


def png_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from the first 24 bytes of a PNG, or None if they are not a PNG's."""
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def png_within_cap(head: bytes, max_pixels: int = MAX_IMPORT_PIXELS) -> bool:
    size = png_size(head)
    return size is not None and 0 < size[0] * size[1] <= max_pixels and min(size) > 0


def _check_images(
    label: str, conn: sqlite3.Connection, version: int, *, steps_too: bool = True
) -> None:
    """Every stored image's PNG header within the pixel cap. Without ``steps_too`` (a file
    over FULL_CHECK_BYTES) the step previews are left to the check each gets when it is read
    (a placeholder if it fails): their headers lie all over a big file, and reading them
    all took 95 s from a cold disk for 1,000 versions × 30 steps."""
    columns: tuple[tuple[str, str, str, str], ...] = (
        ("versions", "result_png", "typeof(result_png) = 'blob'", "a result image"),
        ("layers", "pixels", "1", "a layer"),
    )
    if steps_too:
        columns += (
            ("steps", "preview_x0", "1", "a step preview"),
            ("steps", "preview_xt", "1", "a step preview"),
        )
    if version >= 3:
        columns += (("images", "png", "1", "an init image or mask"),)
    for table, column, where, what in columns:
        rowids = [r[0] for r in conn.execute(f"SELECT rowid FROM {table} WHERE {where}")]
        for rowid in rowids:
            with conn.blobopen(table, column, rowid, readonly=True) as blob:
                head = blob.read(24)
            if not png_within_cap(head):
                raise ProjectError(
                    f"{label} holds {what} that is not a PNG within"
                    f" {MAX_IMPORT_PIXELS // 1_000_000} megapixels, so it is not opened.",
                    R.INVALID,
                )


def quick_check(conn: sqlite3.Connection, file_size: int) -> list[str]:
    """SQLite's quick_check; for a file over FULL_CHECK_BYTES only the small tables and the step index.

    A full check reads every page (about 0.2 s per 500 MiB from a warm cache,
    far longer from a cold disk); a big project would open slowly. Damage in a
    step's own pages is still caught when that step is read, as a ProjectError.
    """
    if file_size <= FULL_CHECK_BYTES:
        return [r[0] for r in conn.execute("PRAGMA quick_check")]
    problems: list[str] = []
    for table in ("meta", "versions", "layers"):
        problems += [r[0] for r in conn.execute(f"PRAGMA quick_check({table})")]
    conn.execute(
        "SELECT count(*), max(idx) FROM steps INDEXED BY sqlite_autoindex_steps_1"
    ).fetchone()
    problems = [p for p in problems if p != "ok"]
    return problems or ["ok"]


def _is_read_only(path: Path, st: os.stat_result) -> bool:
    # root passes os.access() for any file, so the permission bits are checked too.
    no_write_bits = not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    folder = path.resolve().parent
    return no_write_bits or not os.access(path, os.W_OK) or not os.access(folder, os.W_OK)
