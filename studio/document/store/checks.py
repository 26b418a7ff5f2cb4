"""Read-only checks of a project file: is it ours, whole, and a schema this version can write.

Nothing here writes to the file or creates files beside it, so a file that is
refused is left exactly as it was.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from studio.document.store.connections import connect_probe
from studio.document.store.errors import ProjectError, ProjectErrorReason, project_error
from studio.document.store.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    TABLES,
    ProjectSummary,
)

R = ProjectErrorReason
SQLITE_MAGIC = b"SQLite format 3\x00"
FULL_CHECK_BYTES = 1 << 30
"""Files up to this size get a full ``quick_check`` when opened; bigger ones a lighter one."""


def check_project_file(path: str | os.PathLike[str]) -> int:
    """Check that ``path`` is a project this version can open for writing; returns its schema version.

    Reads only: the header bytes directly, then a read-only connection for the
    application id, schema version and ``PRAGMA quick_check``. Raises
    :class:`ProjectError` with one sentence on the first problem.
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
    _check_header(label, header, st.st_size)
    try:
        conn = connect_probe(path)
    except sqlite3.Error as exc:
        raise project_error(exc, path, "open") from None
    try:
        schema = _check_contents(label, conn, st.st_size)
    except sqlite3.Error as exc:
        raise project_error(exc, path, "open") from None
    finally:
        conn.close()
    if _is_read_only(path, st):
        raise ProjectError(
            f"{label} is read-only; use Save As to keep working on a copy, or make the file writable.",
            R.READ_ONLY,
        )
    return schema


def peek(path: str | os.PathLike[str]) -> ProjectSummary:
    """Check ``path`` like ``ProjectStore.open`` (read-only problems aside) and count its contents.

    Never writes to the file; raises :class:`ProjectError` for a file that
    cannot be opened.
    """
    path = Path(path)
    try:
        schema = check_project_file(path)
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


def _check_header(label: str, header: bytes, size: int) -> None:
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
        header[92:96] == change_counter and header_pages and size < header_pages * page_size
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
    if schema < 1:
        raise ProjectError(f"{label} is damaged: it has no file format version.", R.CORRUPT)
    problems = quick_check(conn, size)
    if problems != ["ok"]:
        raise ProjectError(f"{label} is damaged ({problems[0]}).", R.CORRUPT)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if not TABLES.issubset(tables):
        raise ProjectError(f"{label} is damaged: tables are missing.", R.CORRUPT)
    return schema


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
