"""The ``.studio`` project file: one SQLite database, written as the user works.

SQLite's "application file format" pattern: every edit is one transaction that
commits as it happens, so a crash or power cut loses nothing that was committed.

Threading contract
    All writes go through one background :class:`~studio.document.store.writer.Writer`
    thread that owns the read-write connection. Each write method returns a
    :class:`concurrent.futures.Future` at once and never blocks the caller on
    disk; the future resolves after the transaction has committed (or fails
    with :class:`ProjectError`). Writes run in the order they were submitted;
    encoding previews to PNG happens on the writer thread too. Reads are
    synchronous, on a separate read-only connection, and are meant for small
    rows (the tree, one step, one result); they see every write whose future
    has resolved.

Deleting
    Deletes are soft so that undo can bring a version back with all its steps
    (see :mod:`~studio.document.store.rows`). Deleting a version hides its live
    descendants with the same deletion id, and restoring it brings back exactly
    those rows. Hidden rows are purged when the store closes and when a file is
    opened for writing (the undo stack that could restore them is gone by then).

One writer per file
    A store that writes holds the file's :mod:`~studio.document.store.lock`
    from opening to closing, so a second instance is refused before it writes,
    purges or overwrites anything (Save As refuses a target another holds too).
    ``open(path, writing=False)`` reads only, holding the lock, until
    :meth:`ProjectStore.start_writing`: whoever opens a file can build its
    document first and write nothing if that fails.

Older files
    A file of an older schema version is read as it is until the store starts
    writing; then, before any other write, a backup copy is written next to it
    and it is upgraded (:mod:`~studio.document.store.migration`);
    :attr:`ProjectStore.backup_before_upgrade` names the copy.

Checkpoints are stored as the engine serialises them (opaque safetensors
bytes): latents stay in their native dtype because resuming must be exact.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import numpy as np

from studio.document.imageio import decode_png, encode_png
from studio.document.store import files, migration, rows
from studio.document.store.checks import check_project_file
from studio.document.store.connections import connect_probe, connect_read_only
from studio.document.store.errors import (
    ProjectError,
    ProjectErrorReason,
    closed_error,
    not_found,
    project_error,
)
from studio.document.store.lock import ProjectLock, holder, try_lock_project
from studio.document.store.schema import (
    LAYER_FIELDS,
    SCHEMA_VERSION,
    SUFFIX,
    LayerRecord,
    ProjectSnapshot,
    ScoreRecord,
    VersionRecord,
    create_schema,
)
from studio.document.store.writer import Writer
from studio.protocol import StepRecord

T = TypeVar("T")
LayerValue = str | int | float | bool | None
Image = np.ndarray | bytes
"""An image to store: a uint8 HxWx3/HxWx4 array, or PNG bytes stored as they are."""
PREVIEWS_PER_QUERY = 64
"""Previews one query reads: the read connection is shared, so another read waits at most this."""


class ProjectStore:
    """A ``.studio`` file, open for reading and continuous writing.

    Create one with :meth:`create` or :meth:`open`; both raise
    :class:`ProjectError` and leave the file untouched if it is not a project
    this version can write. Call :meth:`close` when done (it waits for pending
    writes).
    """

    def __init__(self, path: Path, lock: ProjectLock, *, _token: object) -> None:
        if _token is not _CONSTRUCT:
            raise TypeError("Use ProjectStore.open() or ProjectStore.create().")
        self._path = path
        self._lock = lock
        self._closed = False
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._writer: Writer | None = None
        self._schema = SCHEMA_VERSION
        self.backup_before_upgrade: Path | None = None
        """Where the copy of the file was written before it was upgraded, if it was."""
        _open_stores.add(self)

    # ---- opening ------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> ProjectStore:
        """Create a new, empty project at ``path``; refuses to replace an existing file."""
        path = Path(path)
        lock = _lock(path)
        try:
            files.create_database(path, create_schema)
        except BaseException:
            lock.release()
            raise
        return cls._open_checked(path, lock, writing=True)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, writing: bool = True) -> ProjectStore:
        """Open an existing project for reading and (unless ``writing`` is False) writing.

        The file is checked read-only first (header, application id, schema,
        integrity, version graph, counts, image headers, and that no other
        instance holds it); if any check fails a :class:`ProjectError` says
        what is wrong and the file has not been written to. With ``writing``
        False nothing is written until :meth:`start_writing`.
        """
        path = Path(path)
        schema = check_project_file(path)
        return cls._open_checked(path, _lock(path), writing=writing, schema=schema)

    @classmethod
    def _open_checked(
        cls, path: Path, lock: ProjectLock, *, writing: bool, schema: int = SCHEMA_VERSION
    ) -> ProjectStore:
        store = cls(path, lock, _token=_CONSTRUCT)
        store._schema = schema
        try:
            # Until it writes, the store reads as the checks did: creating nothing beside the file.
            store._reader = connect_read_only(path) if writing else connect_probe(path)
            if writing:
                store.start_writing()
        except BaseException:
            store.close()
            raise
        return store

    def start_writing(self) -> None:
        """Open the writer (read-write, WAL), upgrade an older file (after a backup copy
        next to it) and purge rows no undo stack can restore any more."""
        if self._writer is not None:
            return
        if self._closed:
            raise closed_error()
        writer = Writer(self._path)
        try:
            writer.started.result()
            if self._schema < SCHEMA_VERSION:
                self.backup_before_upgrade = writer.put(
                    lambda conn: migration.migrate(conn, self._path),
                    "upgrade the file",
                    transaction=False,
                ).result()
                self._schema = SCHEMA_VERSION
        except BaseException:
            writer.stop()
            raise
        self._writer = writer
        with self._read_lock:
            old_reader, self._reader = self._reader, connect_read_only(self._path)
        if old_reader is not None:
            old_reader.close()
        self.submit(rows.purge_deleted)

    @property
    def schema_version(self) -> int:
        """The file's schema version: older than :data:`SCHEMA_VERSION` only until it writes."""
        return self._schema

    @property
    def writing(self) -> bool:
        return self._writer is not None

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
        return 0 if self._writer is None else self._writer.unwritten_count

    # ---- writing (asynchronous) ---------------------------------------------

    def submit(self, fn: Callable[[sqlite3.Connection], T], description: str = "") -> Future[T]:
        """Run ``fn(connection)`` in one transaction on the writer thread.

        The future resolves to ``fn``'s result after COMMIT, or fails with
        :class:`ProjectError` (the transaction rolled back). If the disk was
        full the edit is also kept (``error.kept``), and :meth:`retry_unwritten`
        or :meth:`save_as` writes it later.
        """
        if self._closed or self._writer is None:
            future: Future[T] = Future()
            future.set_exception(closed_error())
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
        bred_from: Sequence[tuple[str, float]] = (),
        generation: int = 0,
    ) -> Future[str]:
        """Add a version (no steps yet); resolves to its id.

        ``bred_from``: a bred version's parents (version id, weight), in order;
        ``generation``: how many crosses lie above it."""
        version_id = id or uuid.uuid4().hex
        created = time.time() if created is None else created
        parents = [(p, float(w)) for p, w in bred_from]

        def write(conn: sqlite3.Connection) -> str:
            conn.execute(
                "INSERT INTO versions(id, parent_id, branch_step, name, recipe_json, created,"
                " generation) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (version_id, parent_id, branch_step, name, recipe_json, created, int(generation)),
            )
            conn.executemany(
                "INSERT INTO version_parents(version_id, parent_id, weight, position)"
                " VALUES (?, ?, ?, ?)",
                [(version_id, p, w, i) for i, (p, w) in enumerate(parents)],
            )
            return version_id

        return self.submit(write, f"add version {name}")

    def rename_version(self, version_id: str, name: str) -> Future[None]:
        def write(conn: sqlite3.Connection) -> None:
            rows.expect_one(
                conn.execute("UPDATE versions SET name = ? WHERE id = ?", (name, version_id))
            )

        return self.submit(write, f"rename version to {name}")

    def delete_version(self, version_id: str) -> Future[int]:
        """Hide a version and its live descendants; resolves to the deletion id."""

        def write(conn: sqlite3.Connection) -> int:
            token = rows.next_deletion_id(conn)
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
            rows.expect_one(cur, "That version")
            return token

        return self.submit(write, "delete version")

    def restore_version(self, version_id: str) -> Future[None]:
        """Undo :meth:`delete_version`: bring back the rows hidden with this version."""

        def write(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT deleted FROM versions WHERE id = ?", (version_id,)
            ).fetchone()
            if row is None:
                raise not_found("That version")
            if row[0]:
                conn.execute("UPDATE versions SET deleted = 0 WHERE deleted = ?", (row[0],))

        return self.submit(write, "restore version")

    def append_step(self, version_id: str, step: StepRecord) -> Future[None]:
        """Store one completed step; its previews are encoded on the writer thread."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT OR REPLACE INTO steps(version_id, idx, {rows.STEP_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    version_id,
                    step.index,
                    step.total,
                    float(step.timestep),
                    None if step.sigma is None else float(step.sigma),
                    encode_png(step.preview_x0),
                    encode_png(step.preview_xt),
                    step.checkpoint,
                ),
            )

        return self.submit(write, f"store step {step.index + 1}")

    def set_step_previews(
        self, version_id: str, previews: Sequence[tuple[int, Image]]
    ) -> Future[None]:
        """Replace stored steps' x0-hat previews, (step index, pixels) each, in one
        transaction; encoded on the writer thread."""

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE steps SET preview_x0 = ? WHERE version_id = ? AND idx = ?",
                [(encode_png(image), version_id, index) for index, image in previews],
            )

        return self.submit(write, f"store {len(previews)} step previews")

    def finish_version(
        self, version_id: str, result: Image | None, *, partial: bool
    ) -> Future[None]:
        """Record the end of a run: its result image (or None) and whether it is partial."""

        def write(conn: sqlite3.Connection) -> None:
            png = None if result is None else encode_png(result)
            cur = conn.execute(
                "UPDATE versions SET finished = 1, partial = ?, result_png = ? WHERE id = ?",
                (int(partial), png, version_id),
            )
            rows.expect_one(cur, "That version")

        return self.submit(write, "store result")

    def set_result(self, version_id: str, result: Image | None) -> Future[None]:
        def write(conn: sqlite3.Connection) -> None:
            png = None if result is None else encode_png(result)
            rows.expect_one(
                conn.execute("UPDATE versions SET result_png = ? WHERE id = ?", (png, version_id)),
                "That version",
            )

        return self.submit(write, "store result")

    def set_scores(self, version_id: str, scores: ScoreRecord | None) -> Future[None]:
        """Store a version's scores and its plug-in values with what produced them
        (replacing any), or with None forget them."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM scores WHERE version_id = ?", (version_id,))
            conn.execute("DELETE FROM plugin_scores WHERE version_id = ?", (version_id,))
            if scores is None:
                return
            conn.execute(
                "INSERT INTO scores(version_id, setting_json, fidelity, novelty,"
                " novelty_unconditional, context_novelty, features)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    version_id,
                    scores.setting_json,
                    float(scores.fidelity),
                    float(scores.novelty),
                    scores.novelty_unconditional,
                    scores.context_novelty,
                    bytes(scores.features),
                ),
            )
            conn.executemany(
                "INSERT INTO plugin_scores(version_id, name, value, setting) VALUES (?, ?, ?, ?)",
                [
                    (version_id, name, float(value), setting)
                    for name, value, setting in scores.plugins
                ],
            )

        return self.submit(write, "store scores")

    def scores(self) -> dict[str, ScoreRecord]:
        """Every live version's stored scores, by version id."""
        with self._reading() as conn:
            return rows.read_scores(conn) if rows.has_lineage(conn) else {}

    # ---- layers ---------------------------------------------------------------

    def add_layer(
        self,
        *,
        pixels: Image,
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
            ids = rows.live_layer_ids(conn)
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
            rows.write_positions(conn, ids)
            return layer_id

        return self.submit(write, f"add layer {name}")

    def update_layer(self, layer_id: str, **changes: LayerValue) -> Future[None]:
        """Change layer properties: any of name, visible, opacity, blend, offset_x, offset_y, version_id."""
        unknown = set(changes) - set(LAYER_FIELDS)
        if unknown:
            raise TypeError(f"Unknown layer fields: {', '.join(sorted(unknown))}")
        values = {k: (int(bool(v)) if k == "visible" else v) for k, v in changes.items()}

        def write(conn: sqlite3.Connection) -> None:
            if not values:
                return
            assignments = ", ".join(f"{k} = ?" for k in values)
            cur = conn.execute(
                f"UPDATE layers SET {assignments} WHERE id = ?", (*values.values(), layer_id)
            )
            rows.expect_one(cur, "That layer")

        return self.submit(write, "change layer")

    def set_layer_pixels(self, layer_id: str, pixels: Image) -> Future[None]:
        def write(conn: sqlite3.Connection) -> None:
            rows.expect_one(
                conn.execute(
                    "UPDATE layers SET pixels = ? WHERE id = ?", (encode_png(pixels), layer_id)
                ),
                "That layer",
            )

        return self.submit(write, "change layer pixels")

    # ---- init images and masks ------------------------------------------------

    def put_image(self, digest: str, kind: str, pixels: Image) -> Future[None]:
        """Keep an init image or a mask (``kind`` "image" or "mask") under the content hash
        a recipe names it by; a hash already kept is left as it is (it names the same pixels)."""
        png = encode_png(pixels)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO images(hash, kind, png) VALUES (?, ?, ?)",
                (digest, kind, png),
            )

        return self.submit(write, "keep an init image")

    def image(self, digest: str) -> np.ndarray | None:
        """The init image or mask kept under ``digest``, or None."""
        with self._reading() as conn:
            if not rows.has_images(conn):
                return None
            row = conn.execute("SELECT png FROM images WHERE hash = ?", (digest,)).fetchone()
        return None if row is None else decode_png(row[0])

    def set_canvas_mask(self, digest: str, pixels: Image | None) -> Future[None]:
        """Make the mask kept under ``digest`` the canvas's mask (``meta.canvas_mask``), in one
        transaction; ``pixels`` None: the canvas has no mask painted."""
        png = None if pixels is None else encode_png(pixels)

        def write(conn: sqlite3.Connection) -> None:
            if png is None:
                conn.execute("DELETE FROM meta WHERE key = 'canvas_mask'")
                return
            conn.execute(
                "INSERT OR IGNORE INTO images(hash, kind, png) VALUES (?, 'mask', ?)", (digest, png)
            )
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('canvas_mask', ?)", (digest,)
            )

        return self.submit(write, "keep the canvas mask")

    def canvas_mask(self) -> np.ndarray | None:
        """The canvas's mask (H×W uint8, 255 repaints), or None when none is painted."""
        with self._reading() as conn:
            if not rows.has_images(conn):
                return None
            row = conn.execute(
                "SELECT png FROM images JOIN meta ON meta.key = 'canvas_mask' AND hash = value"
            ).fetchone()
        return None if row is None else decode_png(row[0])

    def forget_unused_masks(self) -> Future[int]:
        """Drop the masks that are neither the canvas's nor named by any recipe (deleted
        versions included, for undo): earlier states of the painted mask. Only safe when no
        job of this project is in flight, as when it is opened. Resolves to how many."""

        def write(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM images WHERE kind = 'mask'"
                " AND hash NOT IN (SELECT value FROM meta WHERE key = 'canvas_mask')"
                " AND NOT EXISTS (SELECT 1 FROM versions WHERE instr(recipe_json, images.hash))"
            )
            return cursor.rowcount

        return self.submit(write, "forget unused masks")

    def move_layer(self, layer_id: str, position: int) -> Future[None]:
        """Move a live layer to ``position`` (0 = bottom)."""

        def write(conn: sqlite3.Connection) -> None:
            ids = rows.live_layer_ids(conn)
            if layer_id not in ids:
                raise not_found("That layer")
            ids.remove(layer_id)
            ids.insert(max(0, min(position, len(ids))), layer_id)
            rows.write_positions(conn, ids)

        return self.submit(write, "move layer")

    def reorder_layers(self, layer_ids: Sequence[str]) -> Future[None]:
        """Set the order of all live layers, bottom first."""
        order = list(layer_ids)

        def write(conn: sqlite3.Connection) -> None:
            if sorted(order) != sorted(rows.live_layer_ids(conn)):
                raise ProjectError(
                    "The new layer order does not name every layer once.",
                    ProjectErrorReason.NOT_FOUND,
                )
            rows.write_positions(conn, order)

        return self.submit(write, "reorder layers")

    def delete_layer(self, layer_id: str) -> Future[int]:
        """Hide a layer (undoable with :meth:`restore_layer`); resolves to the deletion id."""

        def write(conn: sqlite3.Connection) -> int:
            token = rows.next_deletion_id(conn)
            rows.expect_one(
                conn.execute(
                    "UPDATE layers SET deleted = ? WHERE id = ? AND deleted = 0", (token, layer_id)
                ),
                "That layer",
            )
            rows.write_positions(conn, rows.live_layer_ids(conn))
            return token

        return self.submit(write, "delete layer")

    def restore_layer(self, layer_id: str, position: int | None = None) -> Future[None]:
        """Undo :meth:`delete_layer`, putting the layer back at ``position`` (default: where it was)."""

        def write(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT position FROM layers WHERE id = ?", (layer_id,)).fetchone()
            if row is None:
                raise not_found("That layer")
            ids = rows.live_layer_ids(conn)
            if layer_id not in ids:
                pos = row[0] if position is None else position
                ids.insert(max(0, min(pos, len(ids))), layer_id)
                conn.execute("UPDATE layers SET deleted = 0 WHERE id = ?", (layer_id,))
            rows.write_positions(conn, ids)

        return self.submit(write, "restore layer")

    # ---- whole file -------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every write submitted so far has finished (successfully or not)."""
        if self._writer is not None:
            self._writer.put(_nothing, "flush", transaction=False).exception(timeout)

    def retry_unwritten(self) -> Future[int]:
        """Write the edits kept after a disk-full error, in order; resolves to how many were written."""
        writer = self._writing()
        return writer.put(
            lambda conn: writer.replay_unwritten(), "retry unsaved edits", transaction=False
        )

    def save_as(self, path: str | os.PathLike[str]) -> Future[Path]:
        """Copy the project to ``path`` with SQLite's backup API and continue there.

        The copy is written to a temporary file beside ``path`` and moved into
        place only when complete. Edits kept after a disk-full error are then
        written to the new file. The old file stays as it was.
        """
        target = Path(path)
        writer = self._writing()

        def write(conn: sqlite3.Connection) -> Path:
            if target.resolve() == self._path.resolve():
                raise ProjectError("The project is already saved there.", ProjectErrorReason.IN_USE)
            lock = _lock(target)  # never replace a file another instance has open
            try:
                files.backup(conn, target)
                writer.switch_to(target)
            except BaseException:
                lock.release()
                raise
            with self._read_lock:
                old_reader, self._reader = self._reader, connect_read_only(target)
            if old_reader is not None:
                old_reader.close()
            old_lock, self._lock, self._path = self._lock, lock, target
            old_lock.release()
            writer.replay_unwritten()
            return target

        return writer.put(write, "save as", transaction=False)

    def backup_to(self, path: str | os.PathLike[str]) -> Future[Path]:
        """Write a complete copy to ``path`` (SQLite backup API) without switching to it."""
        target = Path(path)

        def write(conn: sqlite3.Connection) -> Path:
            if holder(target) is not None:
                raise _held_error(target)
            files.backup(conn, target)
            return target

        return self._writing().put(write, "save a copy", transaction=False)

    def close(self, timeout: float | None = None) -> None:
        """Write what is pending, purge deleted rows, close the file and release its lock.

        After this the database is one self-contained file (no ``-wal``). A
        store that never started writing leaves the file as it found it."""
        if self._closed:
            return
        if self._writer is not None:
            with contextlib.suppress(ProjectError):
                self.submit(rows.purge_deleted, "purge").result(timeout)
        self._closed = True
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        if self._writer is not None:
            self._writer.stop(timeout)
        self._lock.release()
        _open_stores.discard(self)

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading (synchronous) ------------------------------------------------

    def versions(self) -> list[VersionRecord]:
        """Live versions, parents before children, each level oldest first."""
        with self._reading() as conn:
            return rows.read_versions(conn)

    def version(self, version_id: str) -> VersionRecord:
        for record in self.versions():
            if record.id == version_id:
                return record
        raise not_found("That version")

    def step_indices(self, version_id: str) -> list[int]:
        """The indices of the version's own stored steps (not inherited ones)."""
        with self._reading() as conn:
            return rows.read_step_indices(conn, version_id)

    def step(
        self, version_id: str, index: int, decode: Callable[[bytes], np.ndarray] = decode_png
    ) -> StepRecord:
        """One stored step: its checkpoint bytes and both previews, decoded with ``decode``."""
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {rows.STEP_COLUMNS} FROM steps WHERE version_id = ? AND idx = ?",
                (version_id, index),
            ).fetchone()
        if row is None:
            raise _step_not_stored(index)
        total, timestep, sigma, x0, xt, checkpoint = row
        return StepRecord(index, total, timestep, sigma, checkpoint, decode(x0), decode(xt))

    def step_checkpoint(self, version_id: str, index: int) -> bytes:
        """The checkpoint bytes of one step (``Checkpoint.from_bytes`` reads them)."""
        return self._step_blob("checkpoint", version_id, index)

    def step_preview(self, version_id: str, index: int, kind: str = "x0") -> bytes:
        """One step's preview as PNG bytes; ``kind`` is ``"x0"`` (prediction) or ``"xt"`` (noisy latent)."""
        if kind not in ("x0", "xt"):
            raise ValueError("kind must be 'x0' or 'xt'")
        return self._step_blob(f"preview_{kind}", version_id, index)

    def step_previews(
        self, version_id: str, indices: Sequence[int], kind: str = "x0"
    ) -> list[tuple[int, bytes]]:
        """Some of a version's steps' previews as (index, PNG bytes), in one query that reads
        no checkpoint; steps not stored are left out. For up to ``PREVIEWS_PER_QUERY`` indices."""
        if kind not in ("x0", "xt"):
            raise ValueError("kind must be 'x0' or 'xt'")
        if len(indices) > PREVIEWS_PER_QUERY:
            raise ValueError(f"at most {PREVIEWS_PER_QUERY} previews a query")
        marks = ", ".join("?" * len(indices))
        with self._reading() as conn:
            found: list[tuple[int, bytes]] = conn.execute(
                f"SELECT idx, preview_{kind} FROM steps"
                f" WHERE version_id = ? AND idx IN ({marks}) ORDER BY idx",
                (version_id, *indices),
            ).fetchall()
        return found

    def step_preview_image(self, version_id: str, index: int, kind: str = "x0") -> np.ndarray:
        return decode_png(self.step_preview(version_id, index, kind))

    def result_png(self, version_id: str) -> bytes | None:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT result_png FROM versions WHERE id = ?", (version_id,)
            ).fetchone()
        if row is None:
            raise not_found("That version")
        png: bytes | None = row[0]
        return png

    def result(
        self, version_id: str, decode: Callable[[bytes], np.ndarray] = decode_png
    ) -> np.ndarray | None:
        """The version's result image, decoded with ``decode``, or None."""
        png = self.result_png(version_id)
        return None if png is None else decode(png)

    def layers(self) -> list[LayerRecord]:
        """Live layers, bottom first, with their pixels (PNG)."""
        with self._reading() as conn:
            return rows.read_layers(conn)

    def snapshot(self) -> ProjectSnapshot:
        """What opening needs (versions, step indices, one preview each, layers), in one transaction."""
        with self._reading() as conn:
            return rows.read_snapshot(conn)

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
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            if self._reader is None:
                raise closed_error()
            try:
                yield self._reader
            except sqlite3.Error as exc:
                raise project_error(exc, self._path, "read") from None

    def _writing(self) -> Writer:
        if self._closed or self._writer is None:
            raise closed_error()
        return self._writer

    def _step_blob(self, column: str, version_id: str, index: int) -> bytes:
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {column} FROM steps WHERE version_id = ? AND idx = ?", (version_id, index)
            ).fetchone()
        if row is None:
            raise _step_not_stored(index)
        blob: bytes = row[0]
        return blob


def _nothing(conn: sqlite3.Connection) -> None:
    return None


def _lock(path: Path) -> ProjectLock:
    try:
        lock = try_lock_project(path)
    except OSError as exc:
        raise ProjectError(
            f"“{path.name}” cannot be opened for writing here ({exc.strerror or exc}).",
            ProjectErrorReason.IO,
        ) from None
    if lock is None:
        raise _held_error(path)
    return lock


def _held_error(path: Path) -> ProjectError:
    who = holder(path) or "another process"
    return ProjectError(
        f"“{path.name}” is open in another Noise Studio window ({who}).", ProjectErrorReason.IN_USE
    )


def _step_not_stored(index: int) -> ProjectError:
    return ProjectError(
        f"Step {index + 1} of that version is not stored.", ProjectErrorReason.NOT_FOUND
    )


_CONSTRUCT = object()
_open_stores: weakref.WeakSet[ProjectStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    # The writer is a daemon thread; make sure queued writes reach the disk at exit.
    for store in list(_open_stores):
        with contextlib.suppress(Exception):
            store.close(timeout=30)
