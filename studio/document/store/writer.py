"""The writer thread: the one owner of a project's read-write connection.

Submitted operations run one at a time, in the order they were submitted, each
in its own transaction unless asked otherwise; each one's future resolves after
COMMIT. When the disk is full, the edit that did not fit and every edit after
it are kept here, in order, until :meth:`Writer.replay_unwritten` writes them
(after space is freed, or into a new file by Save As).
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from studio.document.store.connections import connect_read_write
from studio.document.store.errors import (
    ProjectError,
    ProjectErrorReason,
    closed_error,
    disk_full_error,
    project_error,
)

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], T]
THREAD_NAME = "project-writer"


@dataclass(frozen=True)
class UnwrittenEdit:
    """An edit that failed because the disk was full, kept to be written later."""

    write: Callable[[sqlite3.Connection], object]
    description: str


class _Queued(Protocol):
    def run(self, writer: Writer) -> None: ...

    def fail(self, error: BaseException) -> None: ...


class _Job(Generic[T]):
    def __init__(self, fn: Operation[T], description: str, transaction: bool) -> None:
        self.fn = fn
        self.description = description
        self.transaction = transaction
        self.future: Future[T] = Future()

    def run(self, writer: Writer) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = writer.execute(self.fn, self.description, self.transaction)
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        if self.future.set_running_or_notify_cancel():
            self.future.set_exception(error)


class Writer:
    """Runs operations on the project's read-write connection, on its own thread.

    Thread-safe: :meth:`put` and :meth:`stop` may be called from any thread.
    :meth:`switch_to` and :meth:`replay_unwritten` run inside an operation,
    on the writer thread.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._unwritten: list[UnwrittenEdit] = []
        self.started: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    @property
    def unwritten_count(self) -> int:
        return len(self._unwritten)

    @property
    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise closed_error()
        return self._conn

    def put(self, fn: Operation[T], description: str, transaction: bool = True) -> Future[T]:
        job = _Job(fn, description, transaction)
        if not self._thread.is_alive():
            job.fail(closed_error())
        else:
            self._queue.put(job)
        return job.future

    def stop(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def switch_to(self, path: Path) -> None:
        """Continue writing to ``path`` (a complete copy of the current file)."""
        new = connect_read_write(path)
        old, self._conn, self._path = self._conn, new, path
        if old is not None:
            old.close()

    def replay_unwritten(self) -> int:
        """Write the kept edits in order, each in its own transaction; returns how many."""
        written = 0
        while self._unwritten:
            self._transaction(self._unwritten[0].write)
            self._unwritten.pop(0)
            written += 1
        return written

    def execute(self, fn: Operation[T], description: str, transaction: bool) -> T:
        if not transaction:
            try:
                return fn(self.connection)
            except sqlite3.Error as exc:
                raise project_error(exc, self._path, "write") from None
        if self._unwritten:
            # Keep edits in order behind the one that did not fit.
            self._unwritten.append(UnwrittenEdit(fn, description))
            raise disk_full_error(behind_another=True)
        try:
            return self._transaction(fn)
        except ProjectError as exc:
            if exc.reason is ProjectErrorReason.DISK_FULL:
                self._unwritten.append(UnwrittenEdit(fn, description))
            raise

    def _transaction(self, fn: Operation[T]) -> T:
        conn = self.connection
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise project_error(exc, self._path, "write") from None
        return result

    def _run(self) -> None:
        try:
            self._conn = connect_read_write(self._path)
        except BaseException as exc:
            self.started.set_exception(project_error(exc, self._path, "open"))
            return
        self.started.set_result(None)
        try:
            while (job := self._queue.get()) is not None:
                job.run(self)
        finally:
            # Fail whatever is still queued, then close (which checkpoints the WAL).
            while True:
                try:
                    left = self._queue.get_nowait()
                except queue.Empty:
                    break
                if left is not None:
                    left.fail(closed_error())
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.close()
                self._conn = None
