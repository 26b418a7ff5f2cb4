"""A document bound to its ``.studio`` file: every change to the tree or the layers is persisted.

:class:`Project` listens to a :class:`VersionTree` and a :class:`LayerStack` and
hands each change to the :class:`ProjectStore` writer thread, so the UI thread
never waits on disk. Undo needs no special care: removing a version or layer
soft-deletes it in the file, and putting the same object back (same id)
restores it there.

Lazy opening
    :meth:`Project.load` reads the graph, the recipes, each version's step
    indices and one small thumbnail (its last step's x0-hat preview); memory
    after opening does not grow with the number of stored steps. Step records
    and results are read from the file when shown or resumed: the project is
    the :class:`~studio.document.versions.StepLoader` of the tree's
    :class:`~studio.document.versions.StepStore`.

All or nothing
    :meth:`Project.read` builds every version and layer of a file without
    touching a tree; only :meth:`Project.load` (or :meth:`Project.bind`) puts
    them in one. A window reads first and replaces its document only when the
    read succeeded. A stored image that still cannot be decoded when it is
    shown (its header passed the open checks, its data did not) becomes a grey
    placeholder and ``image_unreadable(sentence)`` is emitted, never an exception.

Previews off the UI thread
    :meth:`Project.read_previews` reads many steps' previews (a filmstrip's) on the
    project's preview thread, a chunk of rows a query and never a checkpoint, and
    hands them, thumbnail-sized, to the UI thread as they come; a newer request
    stops an older one. A UI-thread read waits on the shared read connection for
    one chunk's query at most.

Releasing what the file holds
    A step or result made in this session stays in the tree's memory until the
    writer thread has committed it; then the project tells the StepStore to let
    it go. The writer thread only emits a signal; the release itself runs on
    the thread the project lives in (the UI thread), through a queued
    connection, because the StepStore is UI-thread only.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal, SignalInstance

from studio.document.canvas_mask import CanvasMask
from studio.document.imageio import decode_png
from studio.document.layers import BlendMode, Layer, LayerStack
from studio.document.scores import VersionScores
from studio.document.store import ProjectError, ProjectStore
from studio.document.store.checks import png_within_cap
from studio.document.store.project_store import PREVIEWS_PER_QUERY, LayerValue
from studio.document.versions import StepStore, Version, VersionTree, thumbnail_of
from studio.engine.recipe import image_hash
from studio.protocol import StepRecord

T = TypeVar("T")
PLACEHOLDER_SIDE = 64
Thumbnails = dict[tuple[str, int], np.ndarray]
"""Thumbnail-sized previews by (version id, step index)."""


@dataclass(frozen=True)
class OpenedDocument:
    """Every version (parents first) and layer of a file, read but not yet in any tree."""

    versions: list[Version]
    layers: list[Layer]
    unreadable_thumbnails: int = 0
    cut_prompts: int = 0
    """Recipes whose prompt was over the cap and was cut on the way in."""
    mask: np.ndarray | None = None
    """The canvas's painted inpainting mask, if any."""


class Project(QObject):
    """Persists a VersionTree and a LayerStack to a ProjectStore as they change.

    ``write_failed(message, reason)`` is emitted (queued to the receiver's
    thread) when a write fails; ``reason`` is a
    :class:`~studio.document.store.ProjectErrorReason` value such as
    ``"disk_full"``, for which the UI should offer Save As.

    ``stored(version_id, index)`` is emitted on the project's thread once a
    step (``index`` >= 0) or a result (``index`` == -1) is committed to the
    file and the tree's memory has let it go.
    """

    write_failed = Signal(str, str)
    stored = Signal(str, int)
    image_unreadable = Signal(str)
    _written = Signal(str, int, bool)  # emitted on the writer thread; queued to this object's
    _failed = Signal(str, str)  # the same: write_failed is then emitted on this object's thread
    _previews_read = Signal(int, object, int)  # ticket, Thumbnails, unreadable; preview thread

    RESULT = -1
    MASK_SAVE_MS = 400
    """A painted mask is written this long after its last change (a stroke is many)."""

    def __init__(
        self,
        store: ProjectStore,
        tree: VersionTree,
        layers: LayerStack | None = None,
        parent: QObject | None = None,
        mask: CanvasMask | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.tree = tree
        self.layers = layers if layers is not None else LayerStack()
        self.mask = mask
        self._mask_timer = QTimer(self, singleShot=True, interval=self.MASK_SAVE_MS)
        self._mask_timer.timeout.connect(self._write_mask)
        tree.steps.loader = self
        self._known_versions: set[str] = {v.id for v in tree}
        self._known_layers: set[str] = {lay.id for lay in self.layers}
        # Writes in flight per (version, step index or RESULT): memory lets go of a
        # step only when the newest write of it has committed.
        self._in_flight: dict[tuple[str, int], int] = {}
        self._written.connect(self._on_written, Qt.ConnectionType.QueuedConnection)
        self._preview_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="previews")
        self._preview_tickets = itertools.count(1)
        self._preview_ticket = 0
        self._deliver_previews: Callable[[Thumbnails], None] = lambda _thumbnails: None
        self._previews_read.connect(self._on_previews_read, Qt.ConnectionType.QueuedConnection)
        self._failed.connect(self.write_failed, Qt.ConnectionType.QueuedConnection)
        self._connections: list[tuple[SignalInstance, Callable[..., None]]] = [
            (tree.version_added, self._on_version_added),
            (tree.version_removed, self._on_version_removed),
            (tree.version_renamed, self._on_version_renamed),
            (tree.step_appended, self._on_step_appended),
            (tree.previews_replaced, self._on_previews_replaced),
            (tree.version_finished, self._on_result),
            (tree.result_changed, self._on_result),
            (tree.scores_changed, self._on_scores_changed),
            (self.layers.layer_inserted, self._on_layer_inserted),
            (self.layers.layer_removed, self._on_layer_removed),
            (self.layers.layer_moved, self._on_layer_moved),
            (self.layers.layer_changed, self._on_layer_changed),
        ]
        if mask is not None:
            self._connections.append((mask.changed, self._on_mask_changed))
        for signal, slot in self._connections:
            signal.connect(slot)

    # ---- opening and saving ---------------------------------------------------

    @classmethod
    def read(cls, store: ProjectStore) -> OpenedDocument:
        """Every version and layer of ``store``, built but put in no tree.

        Reads the graph, the recipes, the step indices, one thumbnail per
        version and the layers; no step record and no result. Raises whatever
        a bad file raises (a recipe that does not parse, a layer that does not
        decode): nothing has changed anywhere then.
        """
        snapshot = store.snapshot()
        versions: list[Version] = []
        unreadable = 0
        cut = 0
        for record in snapshot.versions:
            preview = snapshot.last_previews.get(record.id)
            if preview is None and record.has_result:
                preview = store.result_png(record.id)  # a result with no steps: rare
            thumbnail = None
            if preview is not None:
                image = _decode_or_none(preview)
                unreadable += image is None
                thumbnail = _placeholder() if image is None else thumbnail_of(image)
            notes: list[str] = []
            recipe = record.recipe(notes)
            cut += bool(notes)
            stored_scores = snapshot.scores.get(record.id)
            try:
                scores = None if stored_scores is None else VersionScores.from_record(stored_scores)
            except ValueError:
                scores = None  # unreadable scores are only lost work: they can be recomputed
            versions.append(
                Version(
                    recipe=recipe,
                    name=record.name,
                    id=record.id,
                    parent_id=record.parent_id,
                    branch_step=record.branch_step,
                    step_indices=snapshot.step_indices[record.id],
                    thumbnail=thumbnail,
                    has_result=record.has_result,
                    created=record.created,
                    partial=record.partial,
                    finished=record.finished,
                    bred_from=record.bred_from,
                    generation=record.generation,
                    scores=scores,
                )
            )
        layers = [
            Layer(
                pixels=decode_png(layer.pixels),
                name=layer.name,
                visible=layer.visible,
                opacity=layer.opacity,
                blend=BlendMode(layer.blend),
                offset=(layer.offset_x, layer.offset_y),
                source_version=layer.version_id,
                id=layer.id,
            )
            for layer in snapshot.layers
        ]
        return OpenedDocument(versions, layers, unreadable, cut, store.canvas_mask())

    @classmethod
    def load(
        cls,
        store: ProjectStore,
        parent: QObject | None = None,
        *,
        tree: VersionTree | None = None,
        layers: LayerStack | None = None,
    ) -> Project:
        """Build a tree and a layer stack from ``store`` and bind them to it.

        ``tree``/``layers`` let a window that keeps its document objects fill
        its own (empty) ones instead of new ones. Reads no step record and no
        result: see the module docstring.
        """
        return cls.bind(store, cls.read(store), parent, tree=tree, layers=layers)

    @classmethod
    def bind(
        cls,
        store: ProjectStore,
        document: OpenedDocument,
        parent: QObject | None = None,
        *,
        tree: VersionTree | None = None,
        layers: LayerStack | None = None,
        mask: CanvasMask | None = None,
    ) -> Project:
        """Put a document :meth:`read` from ``store`` into ``tree``/``layers``/``mask`` (empty)
        and follow them."""
        tree = tree if tree is not None else VersionTree()
        # nothing of another document lingers; the file answers for steps while the tree fills
        tree.steps = StepStore(loader=_FileSteps(store))
        for version in document.versions:
            tree.add(version)
        layers = layers if layers is not None else LayerStack()
        for layer in document.layers:
            layers.add(layer)
        if mask is not None:
            mask.replace(document.mask)
        if store.writing:
            store.forget_unused_masks()
        return cls(store, tree, layers, parent, mask)

    @property
    def name(self) -> str:
        return self.store.name

    @property
    def path(self) -> Path:
        return self.store.path

    def save_as(self, path: str | Path) -> Future[Path]:
        self.flush_mask()
        return self.store.save_as(path)

    def close(self) -> None:
        """Stop following the document and close the file (pending writes finish first)."""
        self.flush_mask()
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections = []
        self._preview_ticket = 0  # a read in flight stops before its next query
        self._preview_thread.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    # ---- the tree's StepLoader --------------------------------------------------

    def load_step(self, version_id: str, index: int) -> StepRecord:
        return self.store.step(version_id, index, decode=self._shown_decoder(version_id))

    def load_result(self, version_id: str) -> np.ndarray | None:
        return self.store.result(version_id, decode=self._shown_decoder(version_id))

    def read_previews(
        self,
        steps: Sequence[tuple[str, int]],
        kind: str,
        deliver: Callable[[Thumbnails], None],
    ) -> None:
        """Read the ``kind`` ("x0" or "xt") previews of stored ``steps`` (version id, index)
        on the preview thread and call ``deliver`` with them, thumbnail-sized, on this
        object's thread, a chunk at a time as they come. Replaces the request before it,
        which delivers nothing more; no steps: just that. Nothing read is kept here."""
        self._preview_ticket = ticket = next(self._preview_tickets)
        self._deliver_previews = deliver
        if steps:
            self._preview_thread.submit(self._read_previews, ticket, list(steps), kind)

    def _read_previews(self, ticket: int, steps: list[tuple[str, int]], kind: str) -> None:
        """On the preview thread: one query per chunk of a version's steps, decoded here."""
        chunks: dict[str, list[int]] = {}
        for version_id, index in steps:
            chunks.setdefault(version_id, []).append(index)
        for version_id, indices in chunks.items():
            for start in range(0, len(indices), PREVIEWS_PER_QUERY):
                if ticket != self._preview_ticket:
                    return  # replaced, or the project closed
                chunk = indices[start : start + PREVIEWS_PER_QUERY]
                try:
                    found = self.store.step_previews(version_id, chunk, kind)
                except ProjectError:
                    return  # the file closed meanwhile
                thumbnails: Thumbnails = {}
                unreadable = 0
                for index, png in found:
                    image = _decode_or_none(png)
                    unreadable += image is None
                    thumbnails[(version_id, index)] = thumbnail_of(
                        _placeholder() if image is None else image
                    )
                with contextlib.suppress(RuntimeError):  # the project is gone
                    self._previews_read.emit(ticket, thumbnails, unreadable)

    def _on_previews_read(self, ticket: int, thumbnails: Thumbnails, unreadable: int) -> None:
        if ticket != self._preview_ticket:
            return
        if unreadable:
            which = "A stored preview" if unreadable == 1 else f"{unreadable} stored previews"
            self.image_unreadable.emit(f"{which} could not be read; grey placeholders are shown.")
        self._deliver_previews(thumbnails)

    def _shown_decoder(self, version_id: str) -> Callable[[bytes], np.ndarray]:
        def decode(png: bytes) -> np.ndarray:
            image = _decode_or_none(png)
            if image is not None:
                return image
            name = self.tree.get(version_id).name if version_id in self.tree else "a version"
            self.image_unreadable.emit(
                f"An image stored with {name} could not be read; a grey placeholder is shown."
            )
            return _placeholder()

        return decode

    # ---- versions -----------------------------------------------------------

    def _on_version_added(self, version_id: str) -> None:
        if version_id in self._known_versions:
            self._watch(self.store.restore_version(version_id))  # undo of a delete
            return
        version = self.tree.get(version_id)
        self._known_versions.add(version_id)
        self._watch(
            self.store.add_version(
                id=version.id,
                recipe_json=version.recipe.to_json(),
                name=version.name,
                parent_id=version.parent_id,
                branch_step=version.branch_step,
                created=version.created,
                # a parent of another project (or one not written) cannot be linked to
                bred_from=[(p, w) for p, w in version.bred_from if p in self._known_versions],
                generation=version.generation,
            )
        )
        if version.scores is not None:
            self._watch(self.store.set_scores(version_id, version.scores.to_record(version_id)))
        for index in version.step_indices:
            self._write_step(version_id, index)
        if version.finished:
            self._write_result(version)

    def _on_version_removed(self, version_id: str) -> None:
        self._watch(self.store.delete_version(version_id))

    def _on_version_renamed(self, version_id: str, name: str) -> None:
        self._watch(self.store.rename_version(version_id, name))

    def _on_scores_changed(self, version_id: str) -> None:
        scores = self.tree.get(version_id).scores
        record = None if scores is None else scores.to_record(version_id)
        self._watch(self.store.set_scores(version_id, record))

    def _on_step_appended(self, version_id: str, index: int) -> None:
        self._write_step(version_id, index)

    def _on_previews_replaced(self, version_id: str, previews: dict[int, np.ndarray]) -> None:
        # Each step stays in memory until this write of it has landed too.
        future = self.store.set_step_previews(version_id, list(previews.items()))
        self._watch(future, *((version_id, index) for index in previews))

    def _on_result(self, version_id: str) -> None:
        self._write_result(self.tree.get(version_id))

    def _write_step(self, version_id: str, index: int) -> None:
        record = self.tree.steps.step(version_id, index)
        self._watch(self.store.append_step(version_id, record), (version_id, index))

    def _write_result(self, version: Version) -> None:
        result = self.tree.result(version.id)
        if version.finished:
            future = self.store.finish_version(version.id, result, partial=version.partial)
        else:
            future = self.store.set_result(version.id, result)
        self._watch(future, (version.id, self.RESULT))

    def _on_written(self, version_id: str, index: int, ok: bool) -> None:
        key = (version_id, index)
        left = self._in_flight.get(key, 1) - 1
        if left > 0:
            self._in_flight[key] = left
            return
        self._in_flight.pop(key, None)
        if ok:
            self.tree.steps.release(version_id, None if index == self.RESULT else index)
            self.stored.emit(version_id, index)

    # ---- layers -------------------------------------------------------------

    def _on_layer_inserted(self, index: int) -> None:
        layer = self.layers[index]
        if layer.id in self._known_layers:
            # undo of a delete: the hidden row still holds this layer's last state
            self._watch(self.store.restore_layer(layer.id, position=index))
            return
        self._known_layers.add(layer.id)
        self._watch(
            self.store.add_layer(
                id=layer.id,
                pixels=layer.pixels,
                name=layer.name,
                position=index,
                visible=layer.visible,
                opacity=layer.opacity,
                blend=layer.blend.value,
                offset_x=layer.offset[0],
                offset_y=layer.offset[1],
                version_id=self._linkable(layer.source_version),
            )
        )

    def _on_layer_removed(self, index: int, layer_id: str) -> None:
        self._watch(self.store.delete_layer(layer_id))

    def _on_layer_moved(self, from_index: int, to_index: int) -> None:
        self._watch(self.store.move_layer(self.layers[to_index].id, to_index))

    def _on_layer_changed(self, layer_id: str, field: str) -> None:
        layer = self.layers.layer(layer_id)
        if field == "pixels":
            self._watch(self.store.set_layer_pixels(layer_id, layer.pixels))
        elif field == "source_version":
            self._watch(
                self.store.update_layer(layer_id, version_id=self._linkable(layer.source_version))
            )
        else:
            self._watch(self.store.update_layer(layer_id, **_layer_columns(layer, field)))

    def _linkable(self, version_id: str | None) -> str | None:
        # a layer may come from a version of another project; the file links only to its own
        return version_id if version_id in self._known_versions else None

    # ---- the canvas mask ----------------------------------------------------

    def _on_mask_changed(self, *_rect: int) -> None:
        self._mask_timer.start()

    def _write_mask(self) -> None:
        """Write the mask as it is now, kept by its hash like a recipe's mask."""
        self._mask_timer.stop()
        if self.mask is None:
            return
        if self.mask.is_empty():
            self._watch(self.store.set_canvas_mask("", None))
            return
        pixels = np.array(self.mask.pixels)
        self._watch(self.store.set_canvas_mask(image_hash(pixels), pixels))

    def flush_mask(self) -> None:
        """Write a pending mask change now (before a copy of the file is made)."""
        if self._mask_timer.isActive():
            self._write_mask()

    # ---- write outcomes (callbacks run on the writer thread) ------------------

    def _watch(self, future: Future[T], *stored: tuple[str, int]) -> None:
        """Report a failed write; for steps or a result, say on this object's thread that
        they landed."""
        for key in stored:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1

        def done(future: Future[T]) -> None:
            error = future.exception()
            for key in stored:
                self._written.emit(*key, error is None)
            if error is None:
                return
            if isinstance(error, ProjectError):
                self._failed.emit(str(error), error.reason.value)
            else:
                self._failed.emit(f"The project could not be saved ({error}).", "io")

        future.add_done_callback(done)


def _decode_or_none(png: bytes) -> np.ndarray | None:
    """A stored PNG's pixels, or None when it does not decode (checked header first: no bombs)."""
    if not png_within_cap(png[:24]):
        return None
    try:
        return decode_png(png)
    except (Exception, MemoryError):  # Pillow raises many kinds on damaged data
        return None


def _placeholder() -> np.ndarray:
    return np.full((PLACEHOLDER_SIDE, PLACEHOLDER_SIDE, 3), 128, np.uint8)


def _layer_columns(layer: Layer, field: str) -> dict[str, LayerValue]:
    if field == "offset":
        return {"offset_x": layer.offset[0], "offset_y": layer.offset[1]}
    if field == "source_version":
        return {"version_id": layer.source_version}
    if field == "blend":
        return {"blend": layer.blend.value}
    value: LayerValue = getattr(layer, field)
    return {field: value}


class _FileSteps:
    """A StepLoader reading straight from the store, while a project is being opened."""

    def __init__(self, store: ProjectStore) -> None:
        self._store = store

    def load_step(self, version_id: str, index: int) -> StepRecord:
        return self._store.step(version_id, index, decode=_decode_or_placeholder)

    def load_result(self, version_id: str) -> np.ndarray | None:
        return self._store.result(version_id, decode=_decode_or_placeholder)


def _decode_or_placeholder(png: bytes) -> np.ndarray:
    image = _decode_or_none(png)
    return _placeholder() if image is None else image
