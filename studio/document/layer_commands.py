"""Undoable layer edits: one QUndoCommand per user action on the layer stack.

They live on the same ``QUndoStack`` as the version commands. A continuous
drag (an opacity slider, moving a layer with the mouse) pushes one
``UpdateLayerCommand`` per intermediate value with the same ``gesture``
number; those merge into a single undo step, and a drag that ends where it
started removes itself from the stack.
"""

from __future__ import annotations

import itertools
from typing import Any

from PySide6.QtGui import QUndoCommand

from studio.document.compositing import BlendMode
from studio.document.layers import Layer, LayerStack

_gestures = itertools.count(1)


def new_gesture() -> int:
    """A fresh number for one continuous drag; commands sharing it merge."""
    return next(_gestures)


class AddLayerCommand(QUndoCommand):
    """Add a layer (on top unless ``index`` is given); undo removes it."""

    def __init__(
        self,
        stack: LayerStack,
        layer: Layer,
        index: int | None = None,
        parent: QUndoCommand | None = None,
    ):
        super().__init__(f"Add layer {layer.name}", parent)
        self._stack = stack
        self._layer = layer
        self._index = len(stack) if index is None else index

    @property
    def layer(self) -> Layer:
        return self._layer

    def redo(self) -> None:
        self._index = self._stack.insert(self._index, self._layer)

    def undo(self) -> None:
        self._stack.remove(self._layer.id)


class RemoveLayerCommand(QUndoCommand):
    """Delete a layer; undo puts the same layer back where it was."""

    def __init__(self, stack: LayerStack, layer_id: str, parent: QUndoCommand | None = None):
        layer = stack.layer(layer_id)
        super().__init__(f"Delete layer {layer.name}", parent)
        self._stack = stack
        self._layer = layer
        self._index = stack.index_of(layer_id)

    def redo(self) -> None:
        self._index, self._layer = self._stack.remove(self._layer.id)

    def undo(self) -> None:
        self._stack.insert(self._index, self._layer)


class DuplicateLayerCommand(QUndoCommand):
    """Copy a layer (new id, same pixels) just above the original."""

    def __init__(self, stack: LayerStack, layer_id: str, parent: QUndoCommand | None = None):
        original = stack.layer(layer_id)
        super().__init__(f"Duplicate layer {original.name}", parent)
        self._stack = stack
        self._copy = original.duplicate()
        self._original_id = layer_id

    @property
    def layer(self) -> Layer:
        return self._copy

    def redo(self) -> None:
        self._stack.insert(self._stack.index_of(self._original_id) + 1, self._copy)

    def undo(self) -> None:
        self._stack.remove(self._copy.id)


class ReorderLayerCommand(QUndoCommand):
    """Move a layer to another position in the stack (0 = bottom)."""

    def __init__(
        self, stack: LayerStack, layer_id: str, to_index: int, parent: QUndoCommand | None = None
    ):
        layer = stack.layer(layer_id)
        super().__init__(f"Reorder layer {layer.name}", parent)
        self._stack = stack
        self._layer_id = layer_id
        self._from = stack.index_of(layer_id)
        self._to = max(0, min(to_index, len(stack) - 1))

    def redo(self) -> None:
        self._stack.move(self._layer_id, self._to)

    def undo(self) -> None:
        self._stack.move(self._layer_id, self._from)


_LABELS = {
    "name": "Rename layer",
    "visible": "Toggle layer visibility",
    "opacity": "Change layer opacity",
    "blend": "Change blend mode",
    "offset": "Move layer",
}


class UpdateLayerCommand(QUndoCommand):
    """Change properties of one layer (name, visible, opacity, blend, offset, pixels).

    Commands with the same non-None ``gesture`` that change the same fields
    of the same layer merge, keeping the first "before" and the last "after".
    """

    ID = 0x4C59

    def __init__(
        self,
        stack: LayerStack,
        layer_id: str,
        changes: dict[str, Any],
        gesture: int | None = None,
        parent: QUndoCommand | None = None,
    ):
        layer = stack.layer(layer_id)
        fields = sorted(changes)
        label = _LABELS.get(fields[0], "Edit layer") if len(fields) == 1 else "Edit layer"
        super().__init__(f"{label} {layer.name}", parent)
        self._stack = stack
        self._layer_id = layer_id
        self._after = dict(changes)
        self._before = {name: getattr(layer, name) for name in changes}
        self._gesture = gesture

    def id(self) -> int:
        return self.ID

    def redo(self) -> None:
        self._stack.update(self._layer_id, **self._after)

    def undo(self) -> None:
        self._stack.update(self._layer_id, **self._before)

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, UpdateLayerCommand):
            return False
        if self._gesture is None or other._gesture != self._gesture:
            return False
        if other._layer_id != self._layer_id or set(other._after) != set(self._after):
            return False
        self._after = dict(other._after)
        if all(_same(self._after[k], self._before[k]) for k in self._after):
            self.setObsolete(True)  # the drag ended where it began: nothing to undo
        return True


def _same(a: Any, b: Any) -> bool:
    return a is b or (not hasattr(a, "shape") and a == b)


def rename_layer(stack: LayerStack, layer_id: str, name: str) -> UpdateLayerCommand:
    return UpdateLayerCommand(stack, layer_id, {"name": name})


def set_visible(stack: LayerStack, layer_id: str, visible: bool) -> UpdateLayerCommand:
    return UpdateLayerCommand(stack, layer_id, {"visible": visible})


def set_opacity(
    stack: LayerStack, layer_id: str, opacity: float, gesture: int | None = None
) -> UpdateLayerCommand:
    return UpdateLayerCommand(stack, layer_id, {"opacity": opacity}, gesture)


def set_blend(stack: LayerStack, layer_id: str, blend: BlendMode) -> UpdateLayerCommand:
    return UpdateLayerCommand(stack, layer_id, {"blend": BlendMode(blend)})


def move_layer(
    stack: LayerStack, layer_id: str, offset: tuple[int, int], gesture: int | None = None
) -> UpdateLayerCommand:
    """Move a layer on the canvas (its offset); pass one gesture number per mouse drag."""
    return UpdateLayerCommand(
        stack, layer_id, {"offset": (int(offset[0]), int(offset[1]))}, gesture
    )
