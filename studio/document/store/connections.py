"""The three ways the store connects to a project file: read-write, read-only, and a probe.

Journal mode
    WAL with ``synchronous=FULL``. WAL lets the UI thread read while the writer
    commits (a rollback journal would make a read wait for the writer's lock),
    and a crash leaves a ``-wal`` file that a *read-only* connection can read
    (a hot rollback journal needs write access to recover). That is what lets
    ``ProjectStore.open`` check a file read-only before it writes anything.
    ``FULL`` fsyncs the WAL on every commit, so a commit also survives a power
    cut. When the writer closes, SQLite checkpoints and removes the ``-wal`` and
    ``-shm`` files, so a closed project is one self-contained file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from studio.document.store.errors import ProjectError, ProjectErrorReason, project_error
from studio.document.store.files import sidecars_exist

BUSY_TIMEOUT_MS = 5000
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def connect_read_only(path: Path) -> sqlite3.Connection:
    """The readers' connection: any thread (callers serialise use with a lock)."""
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def connect_read_write(path: Path) -> sqlite3.Connection:
    """The writer thread's connection, in WAL mode with full fsync."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise ProjectError(
                f"“{path.name}” cannot be opened for writing here (its folder may not allow it).",
                ProjectErrorReason.IO,
            )
        conn.execute("PRAGMA synchronous = FULL")
        # Cap the -wal file after a checkpoint; big blobs would otherwise leave it large.
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        return conn
    except sqlite3.Error as exc:
        raise project_error(exc, path, "open") from None


def connect_probe(path: Path, *, ignore_journal: bool = False) -> sqlite3.Connection:
    """A connection that cannot change anything on disk, not even by creating sidecar files.

    Without a ``-wal`` or ``-journal`` beside it the main file is the whole
    database, so ``immutable=1`` reads it with no locks and no ``-shm``. With
    one (a crash, or another app has it open) a plain read-only connection
    reads through it; the sidecars exist already then. ``ignore_journal``
    reads the main file alone even then (``immutable=1`` ignores a ``-wal``).
    """
    uri = path.resolve().as_uri()
    if sidecars_exist(path) and not ignore_journal:
        conn = sqlite3.connect(
            f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(
            f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False
        )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn
