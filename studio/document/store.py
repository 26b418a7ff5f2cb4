"""The ``.studio`` project file: one SQLite database, written as the user works.

SQLite's "application file format" pattern: every edit is one transaction that
commits as it happens, so a crash or power cut loses nothing that was committed.

Threading contract
    All writes go through one background writer thread that owns the read-write
    connection. Each write method returns a :class:`concurrent.futures.Future`
    at once and never blocks the caller on disk; the future resolves after the
    transaction has committed (or fails with :class:`ProjectError`). Writes run
    in the order they were submitted. Reads are synchronous, on a separate
    read-only connection, and are meant for small rows (the tree, one step's
    preview or checkpoint); they see every write whose future has resolved.

Journal mode
    WAL with ``synchronous=FULL``. WAL lets the UI thread read while the writer
    commits (a rollback journal would make a read wait for the writer's lock),
    and a crash leaves a ``-wal`` file that a *read-only* connection can read
    (a hot rollback journal needs write access to recover). That is what lets
    :meth:`ProjectStore.open` check a file read-only before it writes anything.
    ``FULL`` fsyncs the WAL on every commit, so a commit also survives a power
    cut. When the store closes, SQLite checkpoints and removes the ``-wal`` and
    ``-shm`` files, so a closed project is one self-contained file.

Deleting
    Deletes are soft so that undo can bring a version back with all its steps:
    ``deleted`` is 0 for live rows, otherwise the id of the deletion that hid
    them. Deleting a version hides its live descendants with the same id, and
    restoring it brings back exactly those rows. Hidden rows are purged when the
    store closes and when a file is opened (the undo stack that could restore
    them is gone by then).

Checkpoints are stored as the engine serialises them (opaque safetensors
bytes): latents stay in their native dtype because resuming must be exact.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import queue
import sqlite3
import stat
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from studio.engine.recipe import Recipe

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4E535444  # "NSTD": marks the file as ours in the SQLite header
APP_NAME = "noise-studio"
SUFFIX = ".studio"

_SQLITE_MAGIC = b"SQLite format 3\x00"
FULL_CHECK_BYTES = 1 << 30  # files up to this size get a full quick_check when opened
_BUSY_TIMEOUT_MS = 5000

T = TypeVar("T")

_SCHEMA = f"""
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE versions (
    id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES versions(id) ON DELETE CASCADE,
    branch_step INTEGER,
    name TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    created REAL NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0,
    partial INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    result_png BLOB,
    CHECK ((parent_id IS NULL) = (branch_step IS NULL))
);
CREATE INDEX versions_by_parent ON versions(parent_id);

CREATE TABLE steps (
    version_id TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    total INTEGER NOT NULL,
    timestep REAL NOT NULL,
    sigma REAL,
    preview_x0 BLOB NOT NULL,
    preview_xt BLOB NOT NULL,
    checkpoint BLOB NOT NULL,
    PRIMARY KEY (version_id, idx)
);

CREATE TABLE layers (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    visible INTEGER NOT NULL DEFAULT 1,
    opacity REAL NOT NULL DEFAULT 1.0,
    blend TEXT NOT NULL DEFAULT 'normal',
    offset_x INTEGER NOT NULL DEFAULT 0,
    offset_y INTEGER NOT NULL DEFAULT 0,
    version_id TEXT REFERENCES versions(id) ON DELETE SET NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    pixels BLOB NOT NULL
);

PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""
# Column order matters: small columns first, blobs last, and the big checkpoint
# after the small previews, so that listing steps or fetching a preview never
# walks a checkpoint's overflow pages.

_LAYER_FIELDS = ("name", "visible", "opacity", "blend", "offset_x", "offset_y", "version_id")


class ProjectError(Exception):
    """A project file cannot be opened or written. ``str(error)`` is one sentence for the user.

    ``reason`` names the kind of failure so the UI can offer the right action
    (for ``DISK_FULL``: Save As elsewhere).
    """

    def __init__(self, message: str, reason: ProjectErrorReason) -> None:
        super().__init__(message)
        self.reason = reason


class ProjectErrorReason(enum.Enum):
    MISSING = "missing"
    NOT_A_PROJECT = "not_a_project"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    NEWER_SCHEMA = "newer_schema"
    READ_ONLY = "read_only"
    DISK_FULL = "disk_full"
    IN_USE = "in_use"
    IO = "io"
    CLOSED = "closed"
    NOT_FOUND = "not_found"
    EXISTS = "exists"


R = ProjectErrorReason


# ---- records ------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRecord:
    """One version as stored; steps and the result image are loaded on demand."""

    id: str
    parent_id: str | None
    branch_step: int | None
    name: str
    recipe_json: str
    created: float
    finished: bool = False
    partial: bool = False
    has_result: bool = False

    def recipe(self) -> Recipe:
        from studio.engine.recipe import Recipe

        return Recipe.from_json(self.recipe_json)


@dataclass(frozen=True)
class StepRecord:
    """A stored step without its blobs."""

    version_id: str
    index: int
    total: int
    timestep: float
    sigma: float | None


@dataclass(frozen=True)
class LayerRecord:
    """A layer's properties; ``pixels`` is PNG (RGBA) bytes."""

    id: str
    position: int
    name: str
    visible: bool
    opacity: float
    blend: str
    offset_x: int
    offset_y: int
    version_id: str | None
    pixels: bytes = field(repr=False)


@dataclass(frozen=True)
class ProjectSnapshot:
    """Everything needed to rebuild the document, read in one consistent transaction."""

    versions: list[VersionRecord]
    steps: dict[str, list[StepRecord]]
    layers: list[LayerRecord]


class SerialisableCheckpoint(Protocol):
    def to_bytes(self) -> bytes: ...


# ---- the store ----------------------------------------------------------------


class ProjectStore:
    """A ``.studio`` file, open for reading and continuous writing.

    Create one with :meth:`create` or :meth:`open`; both raise
    :class:`ProjectError` and leave the file untouched if it is not a project
    this version can write. Call :meth:`close` when done (it waits for pending
    writes).
    """

    def __init__(self, path: Path, *, _token: object) -> None:
        if _token is not _CONSTRUCT:
            raise TypeError("Use ProjectStore.open() or ProjectStore.create().")
        self._path = path
        self._closed = False
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        # Ops that failed because the disk was full, kept (in order) so that
        # retry_unwritten() or save_as() can write them later.
        self._unwritten: list[tuple[Callable[[sqlite3.Connection], Any], str]] = []
        self._writer = _WriterThread(path, self)
        _open_stores.add(self)

    # ---- opening ------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> ProjectStore:
        """Create a new, empty project at ``path``; refuses to replace an existing file."""
        path = Path(path)
        if path.exists() or _sidecars_exist(path):
            raise ProjectError(f"“{path.name}” already exists.", R.EXISTS)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.creating")
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA page_size = 4096")
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                conn.executescript(f"BEGIN; {_SCHEMA} COMMIT;")
                conn.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [
                        ("app", APP_NAME),
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("created", repr(time.time())),
                    ],
                )
            finally:
                conn.close()
            _fsync_file(tmp)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except sqlite3.Error as exc:
            _unlink_quietly(tmp)
            raise _project_error(exc, path, "create") from None
        except OSError as exc:
            _unlink_quietly(tmp)
            raise ProjectError(
                f"“{path.name}” could not be created ({exc.strerror or exc}).",
                R.DISK_FULL if exc.errno == 28 else R.IO,
            ) from None
        return cls._open_checked(path)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ProjectStore:
        """Open an existing project for reading and writing.

        The file is checked read-only first (header, application id, schema
        version, integrity); if any check fails a :class:`ProjectError` says
        what is wrong and the file has not been written to.
        """
        path = Path(path)
        check_project_file(path)
        return cls._open_checked(path)

    @classmethod
    def _open_checked(cls, path: Path) -> ProjectStore:
        store = cls(path, _token=_CONSTRUCT)
        try:
            store._writer.started.result()
            store._reader = _connect_read_only(path)
        except BaseException:
            store._writer.stop()
            raise
        store.submit(_purge_deleted)
        return store

    # ---- properties -----------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def name(self) -> str:
        """The project's name for the window title (file name without ``.studio``)."""
        return self._path.stem if self._path.suffix == SUFFIX else self._path.name

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def unwritten_count(self) -> int:
        """How many edits failed to write because the disk was full and are kept in memory."""
        return len(self._unwritten)

    # ---- writing (asynchronous) ---------------------------------------------

    def submit(self, fn: Callable[[sqlite3.Connection], T], description: str = "") -> Future[T]:
        """Run ``fn(connection)`` in one transaction on the writer thread.

        The future resolves to ``fn``'s result after COMMIT, or fails with
        :class:`ProjectError` (the transaction rolled back). If the disk was
        full the edit is also kept, and :meth:`retry_unwritten` or
        :meth:`save_as` writes it later.
        """
        if self._closed:
            future: Future[T] = Future()
            future.set_exception(ProjectError("The project is closed.", R.CLOSED))
            return future
        return self._writer.put(fn, description)

    def add_version(
        self,
        *,
        recipe_json: str,
        name: str,
        id: str | None = None,
        parent_id: str | None = None,
        branch_step: int | None = None,
        created: float | None = None,
    ) -> Future[str]:
        """Add a version (no steps yet); resolves to its id."""
        version_id = id or uuid.uuid4().hex
        created = time.time() if created is None else created

        def write(conn: sqlite3.Connection) -> str:
            conn.execute(
                "INSERT INTO versions(id, parent_id, branch_step, name, recipe_json, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (version_id, parent_id, branch_step, name, recipe_json, created),
            )
            return version_id

        return self.submit(write, f"add version {name}")

    def rename_version(self, version_id: str, name: str) -> Future[None]:
        def write(conn: sqlite3.Connection) -> None:
            _expect_one(
                conn.execute("UPDATE versions SET name = ? WHERE id = ?", (name, version_id)),
                version_id,
            )

        return self.submit(write, f"rename version to {name}")

    def delete_version(self, version_id: str) -> Future[int]:
        """Hide a version and its live descendants; resolves to the deletion id."""

        def write(conn: sqlite3.Connection) -> int:
            token = _next_deletion_id(conn)
            cur = conn.execute(
                """
                WITH RECURSIVE subtree(id) AS (
                    SELECT id FROM versions WHERE id = ? AND deleted = 0
                    UNION ALL
                    SELECT v.id FROM versions v JOIN subtree s ON v.parent_id = s.id WHERE v.deleted = 0
                )
                UPDATE versions SET deleted = ? WHERE id IN subtree
                """,
                (version_id, token),
            )
            if cur.rowcount == 0:
                raise ProjectError("That version is not in the project.", R.NOT_FOUND)
            return token

        return self.submit(write, "delete version")

    def restore_version(self, version_id: str) -> Future[None]:
        """Undo :meth:`delete_version`: bring back the rows hidden with this version."""

        def write(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT deleted FROM versions WHERE id = ?", (version_id,)
            ).fetchone()
            if row is None:
                raise ProjectError("That version is not in the project.", R.NOT_FOUND)
            if row[0]:
                conn.execute("UPDATE versions SET deleted = 0 WHERE deleted = ?", (row[0],))

        return self.submit(write, "restore version")

    def append_step(
        self,
        version_id: str,
        index: int,
        *,
        total: int,
        timestep: float,
        checkpoint: bytes | SerialisableCheckpoint,
        preview_x0: bytes | np.ndarray,
        preview_xt: bytes | np.ndarray,
        sigma: float | None = None,
    ) -> Future[None]:
        """Store one completed step. Serialising the checkpoint and encoding the
        previews happen on the writer thread, not the caller's."""

        def write(conn: sqlite3.Connection) -> None:
            blob = checkpoint if isinstance(checkpoint, bytes) else checkpoint.to_bytes()
            conn.execute(
                "INSERT OR REPLACE INTO steps(version_id, idx, total, timestep, sigma,"
                " preview_x0, preview_xt, checkpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    version_id,
                    index,
                    total,
                    float(timestep),
                    None if sigma is None else float(sigma),
                    encode_png(preview_x0),
                    encode_png(preview_xt),
                    blob,
                ),
            )

        return self.submit(write, f"store step {index + 1}")

    def finish_version(
        self, version_id: str, result: bytes | np.ndarray | None, *, partial: bool
    ) -> Future[None]:
        """Record the end of a run: its result image (PNG, or RGB/RGBA array) and whether it is partial."""

        def write(conn: sqlite3.Connection) -> None:
            png = None if result is None else encode_png(result)
            cur = conn.execute(
                "UPDATE versions SET finished = 1, partial = ?, result_png = ? WHERE id = ?",
                (int(partial), png, version_id),
            )
            _expect_one(cur, version_id)

        return self.submit(write, "store result")

    def set_result(self, version_id: str, result: bytes | np.ndarray | None) -> Future[None]:
        def write(conn: sqlite3.Connection) -> None:
            png = None if result is None else encode_png(result)
            _expect_one(
                conn.execute("UPDATE versions SET result_png = ? WHERE id = ?", (png, version_id)),
                version_id,
            )

        return self.submit(write, "store result")

    # ---- layers ---------------------------------------------------------------

    def add_layer(
        self,
        *,
        pixels: bytes | np.ndarray,
        name: str,
        position: int | None = None,
        id: str | None = None,
        visible: bool = True,
        opacity: float = 1.0,
        blend: str = "normal",
        offset_x: int = 0,
        offset_y: int = 0,
        version_id: str | None = None,
    ) -> Future[str]:
        """Insert a layer at ``position`` (0 = bottom; default: on top); resolves to its id."""
        layer_id = id or uuid.uuid4().hex

        def write(conn: sqlite3.Connection) -> str:
            ids = _live_layer_ids(conn)
            pos = len(ids) if position is None else max(0, min(position, len(ids)))
            ids.insert(pos, layer_id)
            conn.execute(
                "INSERT INTO layers(id, position, name, visible, opacity, blend, offset_x,"
                " offset_y, version_id, pixels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    layer_id,
                    pos,
                    name,
                    int(visible),
                    float(opacity),
                    blend,
                    int(offset_x),
                    int(offset_y),
                    version_id,
                    encode_png(pixels),
                ),
            )
            _write_positions(conn, ids)
            return layer_id

        return self.submit(write, f"add layer {name}")

    def update_layer(self, layer_id: str, **changes: Any) -> Future[None]:
        """Change layer properties: any of name, visible, opacity, blend, offset_x, offset_y, version_id."""
        unknown = set(changes) - set(_LAYER_FIELDS)
        if unknown:
            raise TypeError(f"Unknown layer fields: {', '.join(sorted(unknown))}")
        values = {k: (int(v) if k == "visible" else v) for k, v in changes.items()}

        def write(conn: sqlite3.Connection) -> None:
            if not values:
                return
            assignments = ", ".join(f"{k} = ?" for k in values)
            cur = conn.execute(
                f"UPDATE layers SET {assignments} WHERE id = ?", (*values.values(), layer_id)
            )
            _expect_one(cur, layer_id)

        return self.submit(write, "change layer")

    def set_layer_pixels(self, layer_id: str, pixels: bytes | np.ndarray) -> Future[None]:
        def write(conn: sqlite3.Connection) -> None:
            _expect_one(
                conn.execute(
                    "UPDATE layers SET pixels = ? WHERE id = ?", (encode_png(pixels), layer_id)
                ),
                layer_id,
            )

        return self.submit(write, "change layer pixels")

    def move_layer(self, layer_id: str, position: int) -> Future[None]:
        """Move a live layer to ``position`` (0 = bottom)."""

        def write(conn: sqlite3.Connection) -> None:
            ids = _live_layer_ids(conn)
            if layer_id not in ids:
                raise ProjectError("That layer is not in the project.", R.NOT_FOUND)
            ids.remove(layer_id)
            ids.insert(max(0, min(position, len(ids))), layer_id)
            _write_positions(conn, ids)

        return self.submit(write, "move layer")

    def reorder_layers(self, layer_ids: Sequence[str]) -> Future[None]:
        """Set the order of all live layers, bottom first."""
        order = list(layer_ids)

        def write(conn: sqlite3.Connection) -> None:
            if sorted(order) != sorted(_live_layer_ids(conn)):
                raise ProjectError(
                    "The new layer order does not name every layer once.", R.NOT_FOUND
                )
            _write_positions(conn, order)

        return self.submit(write, "reorder layers")

    def delete_layer(self, layer_id: str) -> Future[int]:
        """Hide a layer (undoable with :meth:`restore_layer`); resolves to the deletion id."""

        def write(conn: sqlite3.Connection) -> int:
            token = _next_deletion_id(conn)
            _expect_one(
                conn.execute(
                    "UPDATE layers SET deleted = ? WHERE id = ? AND deleted = 0", (token, layer_id)
                ),
                layer_id,
            )
            _write_positions(conn, _live_layer_ids(conn))
            return token

        return self.submit(write, "delete layer")

    def restore_layer(self, layer_id: str, position: int | None = None) -> Future[None]:
        """Undo :meth:`delete_layer`, putting the layer back at ``position`` (default: where it was)."""

        def write(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT position FROM layers WHERE id = ?", (layer_id,)).fetchone()
            if row is None:
                raise ProjectError("That layer is not in the project.", R.NOT_FOUND)
            ids = _live_layer_ids(conn)
            if layer_id not in ids:
                pos = row[0] if position is None else position
                ids.insert(max(0, min(pos, len(ids))), layer_id)
                conn.execute("UPDATE layers SET deleted = 0 WHERE id = ?", (layer_id,))
            _write_positions(conn, ids)

        return self.submit(write, "restore layer")

    # ---- whole file -------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every write submitted so far has finished (successfully or not)."""
        self._writer.put(lambda conn: None, "flush", transaction=False).exception(timeout)

    def retry_unwritten(self) -> Future[int]:
        """Write the edits kept after a disk-full error, in order; resolves to how many were written."""
        return self._writer.put(self._replay_unwritten, "retry unsaved edits", transaction=False)

    def save_as(self, path: str | os.PathLike[str]) -> Future[Path]:
        """Copy the project to ``path`` with SQLite's backup API and continue there.

        The copy is written to a temporary file beside ``path`` and moved into
        place only when complete. Edits kept after a disk-full error are then
        written to the new file. The old file stays as it was.
        """
        target = Path(path)

        def write(conn: sqlite3.Connection) -> Path:
            _backup(conn, target)
            self._writer.switch_to(target)
            with self._read_lock:
                old_reader, self._reader = self._reader, _connect_read_only(target)
            if old_reader is not None:
                old_reader.close()
            self._path = target
            self._replay_unwritten(self._writer.conn)
            return target

        return self._writer.put(write, "save as", transaction=False)

    def backup_to(self, path: str | os.PathLike[str]) -> Future[Path]:
        """Write a complete copy to ``path`` (SQLite backup API) without switching to it."""
        target = Path(path)

        def write(conn: sqlite3.Connection) -> Path:
            _backup(conn, target)
            return target

        return self._writer.put(write, "save a copy", transaction=False)

    def close(self, timeout: float | None = None) -> None:
        """Write what is pending, purge deleted rows, and close the file.

        After this the database is one self-contained file (no ``-wal``)."""
        if self._closed:
            return
        with contextlib.suppress(ProjectError):
            self.submit(_purge_deleted, "purge").result(timeout)
        self._closed = True
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        self._writer.stop(timeout)
        _open_stores.discard(self)

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading (synchronous) ------------------------------------------------

    def versions(self) -> list[VersionRecord]:
        """Live versions, parents before children, each level oldest first."""
        with self._reading() as conn:
            return _read_versions(conn)

    def version(self, version_id: str) -> VersionRecord:
        for record in self.versions():
            if record.id == version_id:
                return record
        raise ProjectError("That version is not in the project.", R.NOT_FOUND)

    def steps(self, version_id: str) -> list[StepRecord]:
        """The version's own stored steps (not inherited ones), by index."""
        with self._reading() as conn:
            return _read_steps(conn, version_id)

    def step_indices(self, version_id: str) -> list[int]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT idx FROM steps WHERE version_id = ? ORDER BY idx", (version_id,)
            )
            return [r[0] for r in rows]

    def step_checkpoint(self, version_id: str, index: int) -> bytes:
        """The checkpoint bytes of one step (``Checkpoint.from_bytes`` reads them)."""
        return self._step_blob("checkpoint", version_id, index)

    def step_preview(self, version_id: str, index: int, kind: str = "x0") -> bytes:
        """One step's preview as PNG bytes; ``kind`` is ``"x0"`` (prediction) or ``"xt"`` (noisy latent)."""
        if kind not in ("x0", "xt"):
            raise ValueError("kind must be 'x0' or 'xt'")
        return self._step_blob(f"preview_{kind}", version_id, index)

    def step_preview_image(self, version_id: str, index: int, kind: str = "x0") -> np.ndarray:
        return decode_png(self.step_preview(version_id, index, kind))

    def result_png(self, version_id: str) -> bytes | None:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT result_png FROM versions WHERE id = ?", (version_id,)
            ).fetchone()
        if row is None:
            raise ProjectError("That version is not in the project.", R.NOT_FOUND)
        return row[0]

    def layers(self) -> list[LayerRecord]:
        """Live layers, bottom first, with their pixels (PNG)."""
        with self._reading() as conn:
            return _read_layers(conn)

    def snapshot(self) -> ProjectSnapshot:
        """Versions, step lists and layers, read in one transaction."""
        with self._reading() as conn:
            conn.execute("BEGIN")
            try:
                versions = _read_versions(conn)
                steps: dict[str, list[StepRecord]] = {v.id: [] for v in versions}
                rows = conn.execute(
                    "SELECT s.version_id, s.idx, s.total, s.timestep, s.sigma FROM steps s"
                    " JOIN versions v ON v.id = s.version_id WHERE v.deleted = 0"
                    " ORDER BY s.version_id, s.idx"
                )
                for row in rows:
                    steps[row[0]].append(StepRecord(*row))
                layers = _read_layers(conn)
            finally:
                conn.execute("COMMIT")
        return ProjectSnapshot(versions, steps, layers)

    def integrity_check(self) -> str:
        """SQLite's full ``PRAGMA integrity_check`` plus foreign keys; "ok" when sound."""
        with self._reading() as conn:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems != ["ok"]:
            return "; ".join(problems)
        if fk:
            return f"{len(fk)} rows point at missing rows"
        return "ok"

    # ---- internals ------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self):  # type: ignore[no-untyped-def]
        with self._read_lock:
            if self._reader is None:
                raise ProjectError("The project is closed.", R.CLOSED)
            try:
                yield self._reader
            except sqlite3.Error as exc:
                raise _project_error(exc, self._path, "read") from None

    def _step_blob(self, column: str, version_id: str, index: int) -> bytes:
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {column} FROM steps WHERE version_id = ? AND idx = ?", (version_id, index)
            ).fetchone()
        if row is None:
            raise ProjectError(f"Step {index + 1} of that version is not stored.", R.NOT_FOUND)
        return row[0]

    def _replay_unwritten(self, conn: sqlite3.Connection) -> int:
        written = 0
        while self._unwritten:
            fn, _ = self._unwritten[0]
            self._writer.run_transaction(conn, fn)
            self._unwritten.pop(0)
            written += 1
        return written

    def _keep_unwritten(self, fn: Callable[[sqlite3.Connection], Any], description: str) -> None:
        self._unwritten.append((fn, description))


_CONSTRUCT = object()
_open_stores: weakref.WeakSet[ProjectStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    # The writer is a daemon thread; make sure queued writes reach the disk at exit.
    for store in list(_open_stores):
        with contextlib.suppress(Exception):
            store.close(timeout=30)


# ---- the writer thread ------------------------------------------------------------


class _WriterThread:
    """Owns the read-write connection; runs submitted ops one at a time, in order."""

    def __init__(self, path: Path, store: ProjectStore) -> None:
        self._store = weakref.proxy(store)
        self._path = path
        self._queue: queue.SimpleQueue[
            tuple[Callable[[sqlite3.Connection], Any], str, bool, Future[Any]] | None
        ] = queue.SimpleQueue()
        self.conn: sqlite3.Connection | None = None
        self.started: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, name="project-writer", daemon=True)
        self._thread.start()

    def put(
        self, fn: Callable[[sqlite3.Connection], T], description: str, transaction: bool = True
    ) -> Future[T]:
        future: Future[T] = Future()
        if not self._thread.is_alive():
            future.set_exception(ProjectError("The project is closed.", R.CLOSED))
            return future
        self._queue.put((fn, description, transaction, future))
        return future

    def stop(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def switch_to(self, path: Path) -> None:
        new = _connect_read_write(path)
        old, self.conn, self._path = self.conn, new, path
        if old is not None:
            old.close()

    def run_transaction(self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
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
            raise _project_error(exc, self._path, "write") from None
        return result

    def _run(self) -> None:
        try:
            self.conn = _connect_read_write(self._path)
        except BaseException as exc:
            self.started.set_exception(
                exc if isinstance(exc, ProjectError) else _project_error(exc, self._path, "open")
            )
            return
        self.started.set_result(None)
        try:
            while (item := self._queue.get()) is not None:
                fn, description, transaction, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    if self._store.unwritten_count and transaction:
                        # Keep edits in order behind the one that did not fit.
                        self._store._keep_unwritten(fn, description)
                        raise _disk_full_error(waiting=True)
                    if transaction:
                        result = self.run_transaction(self.conn, fn)
                    else:
                        result = fn(self.conn)
                except ProjectError as exc:
                    if exc.reason is R.DISK_FULL and transaction and not _is_waiting(exc):
                        self._store._keep_unwritten(fn, description)
                    future.set_exception(exc)
                except BaseException as exc:
                    if isinstance(exc, sqlite3.Error):
                        exc = _project_error(exc, self._path, "write")
                    future.set_exception(exc)
                else:
                    future.set_result(result)
        finally:
            # Fail whatever is still queued, then close (which checkpoints the WAL).
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None and item[3].set_running_or_notify_cancel():
                    item[3].set_exception(ProjectError("The project is closed.", R.CLOSED))
            if self.conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.conn.close()
                self.conn = None


def _disk_full_error(waiting: bool = False) -> ProjectError:
    if waiting:
        error = ProjectError(
            "The disk is full; this change is kept in memory until you free some space or use Save As.",
            R.DISK_FULL,
        )
        error.waiting = True  # type: ignore[attr-defined]
        return error
    return ProjectError(
        "The disk is full; the last change is kept in memory until you free some space or use Save As.",
        R.DISK_FULL,
    )


def _is_waiting(error: ProjectError) -> bool:
    return getattr(error, "waiting", False)


# ---- connections --------------------------------------------------------------


def _connect_read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _connect_read_write(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise ProjectError(
                f"“{path.name}” cannot be opened for writing here (its folder may not allow it).",
                R.IO,
            )
        conn.execute("PRAGMA synchronous = FULL")
        # Cap the -wal file after a checkpoint; big blobs would otherwise leave it large.
        conn.execute(f"PRAGMA journal_size_limit = {64 * 1024 * 1024}")
        return conn
    except sqlite3.Error as exc:
        raise _project_error(exc, path, "open") from None


# ---- checking a file without writing to it ---------------------------------------


def check_project_file(path: str | os.PathLike[str]) -> int:
    """Check that ``path`` is a project this version can open for writing; returns its schema version.

    Reads only: the header bytes directly, then a ``mode=ro`` connection for the
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
    if not header:
        raise ProjectError(
            f"{label} is empty, so it is not a Noise Studio project.", R.NOT_A_PROJECT
        )
    if not header.startswith(_SQLITE_MAGIC) and not (
        len(header) < len(_SQLITE_MAGIC) and _SQLITE_MAGIC.startswith(header)
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
    if st.st_size % page_size or (
        header[92:96] == change_counter and header_pages and st.st_size < header_pages * page_size
    ):
        raise ProjectError(
            f"{label} is truncated: it is shorter than its header says.", R.TRUNCATED
        )
    if int.from_bytes(header[68:72], "big") not in (0, APPLICATION_ID):
        raise ProjectError(
            f"{label} is a database of another program, not a Noise Studio project.",
            R.NOT_A_PROJECT,
        )
    try:
        conn = _connect_probe(path)
    except sqlite3.Error as exc:
        raise _project_error(exc, path, "open") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        schema = conn.execute("PRAGMA user_version").fetchone()[0]
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
        problems = _quick_check(conn, st.st_size)
        if problems != ["ok"]:
            raise ProjectError(f"{label} is damaged ({problems[0]}).", R.CORRUPT)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        if not {"meta", "versions", "steps", "layers"} <= tables:
            raise ProjectError(f"{label} is damaged: tables are missing.", R.CORRUPT)
    except sqlite3.Error as exc:
        raise _project_error(exc, path, "open") from None
    finally:
        conn.close()
    if _is_read_only(path, st):
        raise ProjectError(
            f"{label} is read-only; use Save As to keep working on a copy, or make the file writable.",
            R.READ_ONLY,
        )
    return schema


@dataclass(frozen=True)
class ProjectSummary:
    """What a project holds, read without opening it for writing."""

    schema_version: int
    version_count: int
    layer_count: int


def peek(path: str | os.PathLike[str]) -> ProjectSummary:
    """Check ``path`` like :meth:`ProjectStore.open` (read-only problems aside) and count its contents.

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
    conn = _connect_probe(path)
    try:
        versions = conn.execute("SELECT count(*) FROM versions WHERE deleted = 0").fetchone()[0]
        layers = conn.execute("SELECT count(*) FROM layers WHERE deleted = 0").fetchone()[0]
    except sqlite3.Error as exc:
        raise _project_error(exc, path, "read") from None
    finally:
        conn.close()
    return ProjectSummary(schema, versions, layers)


def _quick_check(conn: sqlite3.Connection, file_size: int) -> list[str]:
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


def _connect_probe(path: Path) -> sqlite3.Connection:
    """A connection that cannot change anything on disk, not even by creating sidecar files.

    Without a ``-wal`` or ``-journal`` beside it the main file is the whole
    database, so ``immutable=1`` reads it with no locks and no ``-shm``. With
    one (a crash, or another app has it open) a plain read-only connection
    reads through it; the sidecars exist already then.
    """
    uri = path.resolve().as_uri()
    if _sidecars_exist(path):
        return sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)


def _is_read_only(path: Path, st: os.stat_result) -> bool:
    # root passes os.access() for any file, so the permission bits are checked too.
    no_write_bits = not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    folder = path.resolve().parent
    return no_write_bits or not os.access(path, os.W_OK) or not os.access(folder, os.W_OK)


def _project_error(exc: BaseException, path: Path, action: str) -> ProjectError:
    """Turn an sqlite3 error into one sentence for the user."""
    if isinstance(exc, ProjectError):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    label = f"“{path.name}”"
    if primary == 13 or "disk is full" in text:
        return _disk_full_error()
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


# ---- row helpers ------------------------------------------------------------------


def _read_versions(conn: sqlite3.Connection) -> list[VersionRecord]:
    rows = conn.execute(
        "SELECT id, parent_id, branch_step, name, recipe_json, created, finished, partial,"
        " result_png IS NOT NULL FROM versions WHERE deleted = 0 ORDER BY created, rowid"
    ).fetchall()
    records = [
        VersionRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), bool(r[7]), bool(r[8]))
        for r in rows
    ]
    # Parents before children, so a reader can add them to a tree in this order.
    by_id = {r.id: r for r in records}
    ordered: list[VersionRecord] = []
    placed: set[str] = set()

    def place(record: VersionRecord) -> None:
        if record.id in placed:
            return
        if record.parent_id in by_id:
            place(by_id[record.parent_id])
        placed.add(record.id)
        ordered.append(record)

    for record in records:
        place(record)
    return ordered


def _read_steps(conn: sqlite3.Connection, version_id: str) -> list[StepRecord]:
    rows = conn.execute(
        "SELECT version_id, idx, total, timestep, sigma FROM steps WHERE version_id = ? ORDER BY idx",
        (version_id,),
    )
    return [StepRecord(*r) for r in rows]


def _read_layers(conn: sqlite3.Connection) -> list[LayerRecord]:
    rows = conn.execute(
        "SELECT id, position, name, visible, opacity, blend, offset_x, offset_y, version_id, pixels"
        " FROM layers WHERE deleted = 0 ORDER BY position, rowid"
    )
    return [
        LayerRecord(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6], r[7], r[8], r[9]) for r in rows
    ]


def _live_layer_ids(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute("SELECT id FROM layers WHERE deleted = 0 ORDER BY position, rowid")
    ]


def _write_positions(conn: sqlite3.Connection, ids: Iterable[str]) -> None:
    conn.executemany(
        "UPDATE layers SET position = ? WHERE id = ? AND position != ?",
        [(i, layer_id, i) for i, layer_id in enumerate(ids)],
    )


def _next_deletion_id(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT max((SELECT coalesce(max(deleted), 0) FROM versions),"
        " (SELECT coalesce(max(deleted), 0) FROM layers))"
    ).fetchone()
    return int(row[0]) + 1


def _expect_one(cursor: sqlite3.Cursor, row_id: str) -> None:
    if cursor.rowcount == 0:
        raise ProjectError("That item is not in the project.", R.NOT_FOUND)


def _purge_deleted(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM layers WHERE deleted != 0")
    # Children of a deleted version are deleted with it, so CASCADE removes only hidden rows.
    conn.execute("DELETE FROM versions WHERE deleted != 0")
    conn.execute("PRAGMA incremental_vacuum")


# ---- files ------------------------------------------------------------------------


def _backup(conn: sqlite3.Connection, target: Path) -> None:
    """Copy the database at ``conn`` to ``target`` atomically, with the backup API."""
    if target.resolve() == Path(conn.execute("PRAGMA database_list").fetchone()[2]).resolve():
        raise ProjectError("The project is already saved there.", R.IN_USE)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.saving")
    try:
        dest = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.backup(dest)
            dest.execute("PRAGMA journal_mode = DELETE")
        finally:
            dest.close()
        _fsync_file(tmp)
        for suffix in ("-wal", "-shm", "-journal"):
            # Sidecars of a file being replaced belong to the old file; SQLite
            # would apply them to the new one.
            _unlink_quietly(Path(f"{target}{suffix}"))
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except sqlite3.Error as exc:
        _unlink_quietly(tmp)
        raise _project_error(exc, target, "saved") from None
    except OSError as exc:
        _unlink_quietly(tmp)
        if exc.errno == 28:
            raise ProjectError(
                f"The disk is full; “{target.name}” could not be saved there.", R.DISK_FULL
            ) from None
        raise ProjectError(
            f"“{target.name}” could not be saved ({exc.strerror or exc}).", R.IO
        ) from None


def _sidecars_exist(path: Path) -> bool:
    return any(Path(f"{path}{s}").exists() for s in ("-wal", "-shm", "-journal"))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if os.name == "posix":
        _fsync_file(path)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# ---- images -----------------------------------------------------------------------


def encode_png(image: bytes | np.ndarray) -> bytes:
    """PNG bytes for a uint8 HxWx3/HxWx4 array (bytes pass through unchanged)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image).copy()
