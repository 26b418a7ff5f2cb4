"""A document bound to its ``.studio`` file: every change to the tree or the layers is persisted.

:class:`Project` listens to a :class:`VersionTree` and a :class:`LayerStack` and
hands each change to the :class:`ProjectStore` writer thread, so the UI thread
never waits on disk. Undo needs no special care: removing a version or layer
soft-deletes it in the file, and putting the same object back (same id)
restores it there.

:meth:`Project.load` rebuilds a tree and a layer stack from a file. Checkpoints
are not read up front: each stored step gets a :class:`StoredCheckpoint` that
reads its bytes from the file the first time the engine needs them.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.document.layers import BlendMode, Layer, LayerStack
from studio.document.store import ProjectError, ProjectStore, decode_png
from studio.document.versions import StoredStep, Version, VersionTree


class StoredCheckpoint:
    """A step's checkpoint that stays in the file until it is used.

    ``to_bytes()`` returns the stored bytes; any other attribute (``latent``,
    ``recipe``, ``scheduler_state``…) loads the :class:`Checkpoint` once and
    reads it from there, so the engine can resume from this object directly.
    """

    def __init__(self, store: ProjectStore, version_id: str, index: int) -> None:
        self._store = store
        self._version_id = version_id
        self._index = index
        self._loaded: Any = None

    def to_bytes(self) -> bytes:
        return self._store.step_checkpoint(self._version_id, self._index)

    def load(self) -> Any:
        if self._loaded is None:
            from studio.engine.checkpoint import Checkpoint  # pulls in torch: only when resuming

            self._loaded = Checkpoint.from_bytes(self.to_bytes())
        return self._loaded

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)


class Project(QObject):
    """Persists a VersionTree and a LayerStack to a ProjectStore as they change.

    ``write_failed(message, reason)`` is emitted (queued to the receiver's
    thread) when a write fails; ``reason`` is a
    :class:`~studio.document.store.ProjectErrorReason` value such as
    ``"disk_full"``, for which the UI should offer Save As.
    """

    write_failed = Signal(str, str)

    def __init__(
        self,
        store: ProjectStore,
        tree: VersionTree,
        layers: LayerStack | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.tree = tree
        self.layers = layers if layers is not None else LayerStack()
        self._known_versions: set[str] = {v.id for v in tree}
        self._known_layers: set[str] = {lay.id for lay in self.layers}
        self._connections = [
            (tree.version_added, self._on_version_added),
            (tree.version_removed, self._on_version_removed),
            (tree.version_renamed, self._on_version_renamed),
            (tree.step_appended, self._on_step_appended),
            (tree.version_finished, self._on_version_finished),
            (tree.result_changed, self._on_result_changed),
            (self.layers.layer_inserted, self._on_layer_inserted),
            (self.layers.layer_removed, self._on_layer_removed),
            (self.layers.layer_moved, self._on_layer_moved),
            (self.layers.layer_changed, self._on_layer_changed),
        ]
        for signal, slot in self._connections:
            signal.connect(slot)

    # ---- opening and saving ---------------------------------------------------

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
        its own (empty) ones instead of new ones.
        """
        snapshot = store.snapshot()
        tree = tree if tree is not None else VersionTree()
        for record in snapshot.versions:
            result_png = store.result_png(record.id) if record.has_result else None
            version = Version(
                recipe=record.recipe(),
                name=record.name,
                id=record.id,
                parent_id=record.parent_id,
                branch_step=record.branch_step,
                created=record.created,
                partial=record.partial,
                finished=record.finished,
                result=None if result_png is None else decode_png(result_png),
            )
            for step in snapshot.steps[record.id]:
                version.steps.append(
                    StoredStep(
                        index=step.index,
                        total=step.total,
                        timestep=step.timestep,
                        sigma=step.sigma,
                        checkpoint=StoredCheckpoint(store, record.id, step.index),  # type: ignore[arg-type]
                        preview_x0=store.step_preview_image(record.id, step.index, "x0"),
                        preview_xt=store.step_preview_image(record.id, step.index, "xt"),
                    )
                )
            tree.add(version)
        layers = layers if layers is not None else LayerStack()
        for record in snapshot.layers:
            layers.add(
                Layer(
                    pixels=decode_png(record.pixels),
                    name=record.name,
                    visible=record.visible,
                    opacity=record.opacity,
                    blend=BlendMode(record.blend),
                    offset=(record.offset_x, record.offset_y),
                    source_version=record.version_id,
                    id=record.id,
                )
            )
        return cls(store, tree, layers, parent)

    @property
    def name(self) -> str:
        return self.store.name

    @property
    def path(self) -> Path:
        return self.store.path

    def save_as(self, path: str | Path) -> Future[Path]:
        return self.store.save_as(path)

    def close(self) -> None:
        """Stop following the document and close the file (pending writes finish first)."""
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections = []
        self.store.close()

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
            )
        )
        for step in version.steps:
            self._write_step(version_id, step)
        if version.finished:
            self._watch(
                self.store.finish_version(version_id, version.result, partial=version.partial)
            )

    def _on_version_removed(self, version_id: str) -> None:
        self._watch(self.store.delete_version(version_id))

    def _on_version_renamed(self, version_id: str, name: str) -> None:
        self._watch(self.store.rename_version(version_id, name))

    def _on_step_appended(self, version_id: str, index: int) -> None:
        version = self.tree.get(version_id)
        step = next(s for s in reversed(version.steps) if s.index == index)
        self._write_step(version_id, step)

    def _on_version_finished(self, version_id: str) -> None:
        version = self.tree.get(version_id)
        self._watch(self.store.finish_version(version_id, version.result, partial=version.partial))

    def _on_result_changed(self, version_id: str) -> None:
        self._watch(self.store.set_result(version_id, self.tree.get(version_id).result))

    def _write_step(self, version_id: str, step: StoredStep) -> None:
        if isinstance(step.checkpoint, StoredCheckpoint):
            checkpoint: Any = step.checkpoint.to_bytes()
        else:
            checkpoint = step.checkpoint
        self._watch(
            self.store.append_step(
                version_id,
                step.index,
                total=step.total,
                timestep=step.timestep,
                sigma=step.sigma,
                checkpoint=checkpoint,
                preview_x0=step.preview_x0,
                preview_xt=step.preview_xt,
            )
        )

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

    # ---- errors -------------------------------------------------------------

    def _watch(self, future: Future[Any]) -> None:
        future.add_done_callback(self._report)

    def _report(self, future: Future[Any]) -> None:
        error = future.exception()
        if error is None:
            return
        if isinstance(error, ProjectError):
            self.write_failed.emit(str(error), error.reason.value)
        else:
            self.write_failed.emit(f"The project could not be saved ({error}).", "io")


def _layer_columns(layer: Layer, field: str) -> dict[str, Any]:
    if field == "offset":
        return {"offset_x": layer.offset[0], "offset_y": layer.offset[1]}
    if field == "source_version":
        return {"version_id": layer.source_version}
    if field == "blend":
        return {"blend": layer.blend.value}
    return {field: getattr(layer, field)}
