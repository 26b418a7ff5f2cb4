"""Replacing a file atomically: a half-written file never takes the place of a good one.

One helper serves the project store (Save As, backups), export and the CLI.
``write(temp_path)`` fills a temporary file beside the target; only when it
returns is the file fsynced and moved over the target, and the folder is
fsynced so the rename survives a power loss. On any failure the temporary file
is removed and the target is untouched. Qt-free.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def write_atomically(
    path: str | os.PathLike[str],
    write: Callable[[Path], None] | bytes,
    *,
    temp_suffix: str | None = None,
    before_replace: Callable[[Path], None] | None = None,
) -> Path:
    """Fill a temporary file with ``write(temp)`` (or the given bytes), then move it over ``path``.

    The temporary name ends in ``.part`` and the target's suffix (so a writer that
    picks a format by suffix picks the right one), or in ``temp_suffix``.
    ``before_replace(path)`` runs once the temporary file is complete and on disk,
    just before the rename (the store removes the old file's sidecars there).
    Errors propagate unchanged (``OSError`` for the folder or the disk, or
    whatever ``write`` raised); the caller turns them into its own message.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    suffix = ".part" + path.suffix if temp_suffix is None else temp_suffix
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    temp = Path(temp_name)
    try:
        if isinstance(write, (bytes, bytearray, memoryview)):
            temp.write_bytes(bytes(write))
        else:
            write(temp)
        # mkstemp makes the file private (0600); a saved file gets the usual mode instead.
        os.chmod(temp, 0o666 & ~current_umask())
        fsync_path(temp)
        if before_replace is not None:
            before_replace(path)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    with contextlib.suppress(OSError):  # durable rename where the platform allows it
        fsync_folder(folder)
    return path


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    if os.name == "posix":
        fsync_path(folder)
