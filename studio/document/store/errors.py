"""What can go wrong with a project file, said in one sentence for the user."""

from __future__ import annotations

import enum
from pathlib import Path


class ProjectErrorReason(enum.Enum):
    MISSING = "missing"
    NOT_A_PROJECT = "not_a_project"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    NEWER_SCHEMA = "newer_schema"
    READ_ONLY = "read_only"
    DISK_FULL = "disk_full"
    IN_USE = "in_use"
    FOREIGN_SCHEMA = "foreign_schema"
    FOREIGN_JOURNAL = "foreign_journal"
    INVALID = "invalid"
    IO = "io"
    CLOSED = "closed"
    NOT_FOUND = "not_found"
    EXISTS = "exists"


class ProjectError(Exception):
    """A project file cannot be opened or written. ``str(error)`` is one sentence for the user.

    ``reason`` names the kind of failure so the UI can offer the right action
    (for ``DISK_FULL``: Save As elsewhere). ``kept`` is True when the edit that
    failed is held in memory and will be written by
    :meth:`ProjectStore.retry_unwritten` or :meth:`ProjectStore.save_as`.
    """

    def __init__(self, message: str, reason: ProjectErrorReason, *, kept: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.kept = kept


R = ProjectErrorReason


def disk_full_error(*, behind_another: bool = False) -> ProjectError:
    """The disk-full error of an edit that is kept; ``behind_another``: it waits behind an earlier one."""
    which = "this change is" if behind_another else "the last change is"
    return ProjectError(
        f"The disk is full; {which} kept in memory until you free some space or use Save As.",
        R.DISK_FULL,
        kept=True,
    )


def not_found(what: str = "That item") -> ProjectError:
    return ProjectError(f"{what} is not in the project.", R.NOT_FOUND)


def closed_error() -> ProjectError:
    return ProjectError("The project is closed.", R.CLOSED)


def project_error(exc: BaseException, path: Path, action: str) -> ProjectError:
    """Turn an sqlite3 (or already translated) error into one sentence for the user."""
    if isinstance(exc, ProjectError):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)  # set only on errors SQLite itself raised
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    label = f"“{path.name}”"
    if primary == 13 or "disk is full" in text:
        return disk_full_error()
    if primary in (11, 26) or "malformed" in text or "not a database" in text:
        return ProjectError(f"{label} is damaged and cannot be {action}.", R.CORRUPT)
    if primary == 8 or "readonly" in text:
        return ProjectError(f"{label} is read-only and cannot be written.", R.READ_ONLY)
    if primary in (5, 6) or "locked" in text:
        return ProjectError(f"{label} is in use by another program.", R.IN_USE)
    if primary == 14 or "unable to open" in text:
        return ProjectError(f"{label} cannot be opened.", R.IO)
    if primary == 10 or "disk i/o" in text:
        return ProjectError(f"{label} could not be {action} because of a disk error.", R.IO)
    return ProjectError(f"{label} could not be {action} ({exc}).", R.IO)
