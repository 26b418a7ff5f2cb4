"""Untitled projects and crash recovery.

An untitled project is a real ``.studio`` file in the recovery folder
(``platformdirs.user_data_dir("noise-studio")/recovery``), written continuously
like any other project. Beside it lies ``<name>.lock``: the running app holds an
OS file lock on it (``flock`` / ``msvcrt.locking``) and writes its pid there.
The OS drops the lock when the process dies, however it dies, so on the next
launch a project whose lock can be taken belongs to no running app: it was
left by a crash and can be offered back. A clean exit, or Save As to a real
location, removes the untitled file and its lock.

The environment variable ``NOISE_STUDIO_RECOVERY_DIR`` overrides the folder
(tests, and trying the flow by hand).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from studio.document.store import (
    SUFFIX,
    ProjectError,
    ProjectErrorReason,
    ProjectStore,
    peek,
)
from studio.document.store.connections import connect_read_only
from studio.document.store.errors import project_error
from studio.document.store.files import backup, remove_sidecars, unlink_quietly
from studio.document.store.lock import lock as _lock
from studio.document.store.lock import lock_path
from studio.document.store.lock import unlock as _unlock

RECOVERY_DIR_ENV = "NOISE_STUDIO_RECOVERY_DIR"


def recovery_dir() -> Path:
    """The folder for untitled projects (created on demand)."""
    override = os.environ.get(RECOVERY_DIR_ENV)
    if override:
        folder = Path(override)
    else:
        import platformdirs

        folder = Path(platformdirs.user_data_dir("noise-studio")) / "recovery"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class RecoveryLock:
    """This process's claim on one untitled project; held until :meth:`release`."""

    def __init__(self, project: Path, fd: int) -> None:
        self.project = project
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self, *, remove_project: bool) -> None:
        """Give up the claim; with ``remove_project`` also delete the untitled file.

        Call with ``remove_project=True`` on a clean exit or after Save As; the
        store must be closed first.
        """
        if self._fd is None:
            return
        if remove_project:
            _remove_project_files(self.project)
            with contextlib.suppress(FileNotFoundError):
                _lock_path(self.project).unlink()
        _unlock(self._fd)
        os.close(self._fd)
        self._fd = None


@dataclass(frozen=True)
class RecoverableProject:
    """An untitled project left behind by an app that is no longer running."""

    path: Path
    modified: float
    version_count: int
    layer_count: int
    problem: str | None = None

    @property
    def is_empty(self) -> bool:
        return self.version_count == 0 and self.layer_count == 0 and self.problem is None


def create_untitled(folder: Path | None = None) -> tuple[ProjectStore, RecoveryLock]:
    """A new untitled project in the recovery folder, locked by this process."""
    lock = _lock_new_untitled(folder)
    path = lock.project
    try:
        store = ProjectStore.create(path)
    except BaseException:
        lock.release(remove_project=True)
        raise
    return store, lock


def recoverable_projects(
    folder: Path | None = None, *, discard_empty: bool = True
) -> list[RecoverableProject]:
    """Untitled projects that no running app holds, newest first.

    Reads each file without writing to it. With ``discard_empty`` an orphan
    with no versions and no layers is deleted instead of listed: there is
    nothing in it to restore.
    """
    folder = folder or recovery_dir()
    found: list[RecoverableProject] = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        lock = _try_lock(path)
        if lock is None:
            continue  # another running instance owns it
        try:
            entry = _describe(path)
            if discard_empty and entry.is_empty:
                lock.release(remove_project=True)
                continue
            found.append(entry)
        finally:
            lock.release(remove_project=False)
    for stale in folder.glob(f"*{SUFFIX}.lock"):
        project = stale.with_name(stale.name.removesuffix(".lock"))
        if not project.exists() and (lock := _try_lock(project)) is not None:
            lock.release(remove_project=True)  # left by a crash before the project was created
    found.sort(key=lambda e: e.modified, reverse=True)
    return found


def claim(path: Path, *, writing: bool = True) -> tuple[ProjectStore, RecoveryLock]:
    """Restore an orphaned untitled project: lock it for this process and open it.

    ``writing=False``: read only until ``store.start_writing()`` (see ProjectStore.open)."""
    lock = _try_lock(path)
    if lock is None:
        raise ProjectError(
            f"“{path.name}” is open in another window of Noise Studio.", ProjectErrorReason.IN_USE
        )
    try:
        store = ProjectStore.open(path, writing=writing)
    except BaseException:
        lock.release(remove_project=False)
        raise
    return store, lock


def copy_to_untitled(source: Path, folder: Path | None = None) -> tuple[ProjectStore, RecoveryLock]:
    """An untitled copy of ``source`` (which another instance may be writing), opened read-only.

    The copy is made with SQLite's backup API from a read-only connection, so
    ``source`` is never written; it is then checked like any file being opened.
    Call ``store.start_writing()`` to work on it.
    """
    lock = _lock_new_untitled(folder)
    path = lock.project
    try:
        try:
            source_conn = connect_read_only(source)
        except sqlite3.Error as exc:
            raise project_error(exc, source, "read") from None
        try:
            backup(source_conn, path)
        finally:
            source_conn.close()
        store = ProjectStore.open(path, writing=False)
    except BaseException:
        lock.release(remove_project=True)
        raise
    return store, lock


def discard(path: Path) -> None:
    """Delete an orphaned untitled project the user chose not to restore."""
    lock = _try_lock(path)
    if lock is None:
        raise ProjectError(
            f"“{path.name}” is open in another window of Noise Studio.", ProjectErrorReason.IN_USE
        )
    lock.release(remove_project=True)


def _lock_new_untitled(folder: Path | None) -> RecoveryLock:
    folder = folder or recovery_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    lock = _try_lock(folder / f"untitled-{stamp}-{uuid.uuid4().hex[:6]}{SUFFIX}")
    if lock is None:  # a fresh random name cannot be locked by anyone else
        raise ProjectError(
            "The recovery folder is in use by another program.", ProjectErrorReason.IN_USE
        )
    return lock


def _describe(path: Path) -> RecoverableProject:
    modified = max(
        (p.stat().st_mtime for p in (path, Path(f"{path}-wal")) if p.exists()), default=0.0
    )
    try:
        summary = peek(path)
    except ProjectError as exc:
        return RecoverableProject(path, modified, 0, 0, problem=str(exc))
    return RecoverableProject(path, modified, summary.version_count, summary.layer_count)


def _lock_path(project: Path) -> Path:
    return project.with_name(project.name + ".lock")


def _try_lock(project: Path) -> RecoveryLock | None:
    fd = os.open(_lock_path(project), os.O_RDWR | os.O_CREAT, 0o644)
    if not _lock(fd):
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return RecoveryLock(project, fd)


def _remove_project_files(project: Path) -> None:
    unlink_quietly(project)
    remove_sidecars(project)
    unlink_quietly(lock_path(project))
