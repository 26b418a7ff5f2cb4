"""One instance at a time writes a project: an OS lock on ``<file>-lock`` beside it.

The lock file holds the pid and host of the instance that has the project
open, for the sentence a second instance shows. The lock itself is the OS's
(``flock`` / ``msvcrt.locking``), so it goes when its process dies however it
dies: a lock file left by a crash is stale by construction and is simply
taken. Testing whether another instance holds a project opens an existing lock
file read-only and creates nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

LOCK_SUFFIX = "-lock"


def lock_path(project: Path) -> Path:
    return Path(f"{project}{LOCK_SUFFIX}")


class ProjectLock:
    """This process's hold on one project file; released by :meth:`release`."""

    def __init__(self, project: Path, fd: int) -> None:
        self.project = project
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink while still holding it: whoever opens the name next gets a fresh file.
        with contextlib.suppress(OSError):
            if _same_file(self._fd, lock_path(self.project)):
                lock_path(self.project).unlink()
        unlock(self._fd)
        os.close(self._fd)
        self._fd = None


def try_lock_project(project: Path) -> ProjectLock | None:
    """Take the project's lock for this process, or None if another instance holds it."""
    path = lock_path(project)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not lock(fd):
            os.close(fd)
            return None
        if _same_file(fd, path):
            break
        # The holder removed the file between our open and our lock: try the new one.
        unlock(fd)
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    return ProjectLock(project, fd)


def holder(project: Path) -> str | None:
    """Who holds ``project`` ("process 123 on host"), or None when nobody does. Creates nothing."""
    path = lock_path(project)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if lock(fd):
            unlock(fd)
            return None
        text = os.read(fd, 200).decode(errors="replace").split()
    finally:
        os.close(fd)
    if len(text) >= 2 and text[0].isdigit():
        return f"process {text[0]} on {text[1]}"
    return "another process"


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


if os.name == "nt":
    import msvcrt

    def lock(fd: int) -> bool:
        """Take an exclusive, non-blocking OS lock on ``fd``; False if another holds it."""
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def unlock(fd: int) -> None:
        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def lock(fd: int) -> bool:
        """Take an exclusive, non-blocking OS lock on ``fd``; False if another holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
