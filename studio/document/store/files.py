"""The project file on disk: creating it, copying it whole (SQLite's backup API), and its sidecars.

A new file or a copy is written through :func:`studio.atomic_write.write_atomically`
(the helper export and the CLI use): a temporary file beside its target, fsynced,
renamed over the target only when complete, and the folder fsynced so the rename
survives a power cut. The temporary names do not end in ``.studio``, so a crash
mid-write never leaves something that looks like a project.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

from studio import atomic_write
from studio.document.store.errors import ProjectError, ProjectErrorReason, project_error

SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")


def sidecars_exist(path: Path) -> bool:
    return any(Path(f"{path}{s}").exists() for s in SIDECAR_SUFFIXES)


def journal_exists(path: Path) -> bool:
    return Path(f"{path}-wal").exists()


def set_journal_aside(path: Path) -> Path:
    """Move a ``-wal`` that does not belong to ``path`` out of SQLite's way; returns where it went.

    The journal is kept (renamed, never deleted) in case someone wants it; the
    ``-shm`` index is derived from it and is removed.
    """
    wal = Path(f"{path}-wal")
    aside = wal.with_name(f"{wal.name}.foreign-{uuid.uuid4().hex[:8]}")
    os.replace(wal, aside)
    unlink_quietly(Path(f"{path}-shm"))
    return aside


def remove_sidecars(path: Path) -> None:
    for suffix in SIDECAR_SUFFIXES:
        unlink_quietly(Path(f"{path}{suffix}"))


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def create_database(path: Path, lay_out: Callable[[sqlite3.Connection], None]) -> None:
    """Make a new database at ``path`` with ``lay_out(connection)``; refuses to replace a file."""
    if path.exists() or sidecars_exist(path):
        raise ProjectError(f"“{path.name}” already exists.", ProjectErrorReason.EXISTS)
    _write_beside(path, "creating", "created", lay_out)


def backup(conn: sqlite3.Connection, target: Path) -> None:
    """Copy the database at ``conn`` to ``target`` atomically, with the backup API."""
    if target.resolve() == Path(conn.execute("PRAGMA database_list").fetchone()[2]).resolve():
        raise ProjectError("The project is already saved there.", ProjectErrorReason.IN_USE)

    def copy(dest: sqlite3.Connection) -> None:
        conn.backup(dest)
        dest.execute("PRAGMA journal_mode = DELETE")

    # Sidecars of a file being replaced belong to the old file; SQLite would
    # apply them to the new one.
    _write_beside(target, "saving", "saved", copy, before_replace=remove_sidecars)


def _write_beside(
    target: Path,
    temp_suffix: str,
    action: str,
    fill: Callable[[sqlite3.Connection], None],
    before_replace: Callable[[Path], None] | None = None,
) -> None:
    def write(temp: Path) -> None:
        dest = sqlite3.connect(temp, isolation_level=None)
        try:
            fill(dest)
        finally:
            dest.close()

    try:
        atomic_write.write_atomically(
            target, write, temp_suffix=f".{temp_suffix}", before_replace=before_replace
        )
    except sqlite3.Error as exc:
        raise project_error(exc, target, action) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ProjectError(
                f"The disk is full; “{target.name}” could not be {action} there.",
                ProjectErrorReason.DISK_FULL,
            ) from None
        raise ProjectError(
            f"“{target.name}” could not be {action} ({exc.strerror or exc}).",
            ProjectErrorReason.IO,
        ) from None
