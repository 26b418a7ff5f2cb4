"""The layer stack: an ordered list of image layers and their composite.

A ``Layer`` is immutable: an edit replaces it with a changed copy, which makes
undo commands trivial (they hold the before and after values) and lets the
compositor tell what changed by comparing keys. ``LayerStack`` is the one
mutable object; it announces every change through Qt signals so that the
canvas and the layers panel can follow it. Widgets never change it directly:
they push commands from ``studio.document.layer_commands`` onto the undo stack.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from studio.document.compositing import (
    BlendMode,
    Compositor,
    PreviewCompositor,
    Rect,
    preview_factor,
    to_straight_u8,
)

__all__ = ["BlendMode", "Layer", "LayerError", "LayerStack"]


class LayerError(ValueError):
    """An edit names a layer that does not exist or a value a layer cannot hold."""


def _readonly_rgba(pixels: np.ndarray) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = np.concatenate([arr, np.full((*arr.shape[:2], 1), 255, arr.dtype)], axis=2)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 4:
        raise LayerError("Layer pixels must be an RGBA (or RGB) uint8 array of shape (H, W, 4).")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise LayerError("A layer must be at least one pixel wide and high.")
    if arr.flags.writeable:
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Layer:
    """One image layer. ``pixels`` is straight-alpha RGBA uint8 (H, W, 4), read-only.

    ``offset`` is the canvas position of the layer's top-left pixel.
    ``source_version`` names the version the pixels came from, if any.
    """

    pixels: np.ndarray
    name: str = "Layer"
    visible: bool = True
    opacity: float = 1.0
    blend: BlendMode = BlendMode.NORMAL
    offset: tuple[int, int] = (0, 0)
    source_version: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pixels", _readonly_rgba(self.pixels))
        object.__setattr__(self, "blend", BlendMode(self.blend))
        object.__setattr__(self, "offset", (int(self.offset[0]), int(self.offset[1])))
        opacity = float(self.opacity)
        if not math.isfinite(opacity) or not 0.0 <= opacity <= 1.0:
            raise LayerError("Layer opacity must be between 0 and 1.")
        object.__setattr__(self, "opacity", opacity)
        object.__setattr__(self, "visible", bool(self.visible))
        object.__setattr__(self, "name", str(self.name))

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def with_changes(self, **changes: Any) -> Layer:
        """A copy with some fields changed, keeping the id (it is the same layer)."""
        if "id" in changes:
            raise LayerError("A layer's id cannot change.")
        return replace(self, **changes)

    def duplicate(self, name: str | None = None) -> Layer:
        """A new layer (new id) with the same pixels and properties."""
        return replace(
            self, id=uuid.uuid4().hex, name=name if name is not None else f"{self.name} copy"
        )


EDITABLE_FIELDS = ("name", "visible", "opacity", "blend", "offset", "pixels", "source_version")


class LayerStack(QObject):
    """The ordered layers of a canvas, bottom (index 0) to top, and their composite.

    The canvas size is set explicitly, or taken from the first layer added to
    an empty stack of size 0x0. Signals carry indices (at the time of the
    change) or layer ids; ``changed`` is emitted after every edit with the
    canvas rectangle (x, y, w, h) that needs redrawing.
    """

    layer_inserted = Signal(int)  # index
    layer_removed = Signal(int, str)  # index, layer id
    layer_moved = Signal(int, int)  # from index, to index
    layer_changed = Signal(str, str)  # layer id, field name
    size_changed = Signal(int, int)  # width, height
    changed = Signal(int, int, int, int)  # dirty rectangle x, y, w, h

    def __init__(self, width: int = 0, height: int = 0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._layers: list[Layer] = []
        self._size = (int(width), int(height))
        self._compositor = Compositor()
        self._preview = PreviewCompositor()

    # ---- reading ------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(tuple(self._layers))

    def __getitem__(self, index: int) -> Layer:
        return self._layers[index]

    def index_of(self, layer_id: str) -> int:
        for i, layer in enumerate(self._layers):
            if layer.id == layer_id:
                return i
        raise LayerError(f"There is no layer with id {layer_id!r}.")

    def layer(self, layer_id: str) -> Layer:
        return self._layers[self.index_of(layer_id)]

    # ---- editing (called by undo commands) ---------------------------------

    def set_size(self, width: int, height: int) -> None:
        if width < 0 or height < 0:
            raise LayerError("The canvas size cannot be negative.")
        if (width, height) != self._size:
            self._size = (int(width), int(height))
            self.size_changed.emit(*self._size)
            self._emit_changed((0, 0, *self._size))

    def insert(self, index: int, layer: Layer) -> int:
        """Insert ``layer`` at ``index`` (clamped; ``len(self)`` puts it on top) and return the index."""
        if any(existing.id == layer.id for existing in self._layers):
            raise LayerError(f"A layer with id {layer.id!r} is already in the stack.")
        index = max(0, min(int(index), len(self._layers)))
        if not self._layers and self._size == (0, 0):
            self.set_size(layer.width, layer.height)
        self._layers.insert(index, layer)
        self.layer_inserted.emit(index)
        self._emit_changed(self._bounds(layer))
        return index

    def add(self, layer: Layer) -> int:
        """Put ``layer`` on top of the stack and return its index."""
        return self.insert(len(self._layers), layer)

    def remove(self, layer_id: str) -> tuple[int, Layer]:
        """Remove a layer and return where it was and what it was."""
        index = self.index_of(layer_id)
        layer = self._layers.pop(index)
        self.layer_removed.emit(index, layer_id)
        self._emit_changed(self._bounds(layer))
        return index, layer

    def move(self, layer_id: str, to_index: int) -> int:
        """Move a layer to ``to_index`` (its index after the move, clamped) and return that index."""
        from_index = self.index_of(layer_id)
        to_index = max(0, min(int(to_index), len(self._layers) - 1))
        if to_index != from_index:
            layer = self._layers.pop(from_index)
            self._layers.insert(to_index, layer)
            self.layer_moved.emit(from_index, to_index)
            self._emit_changed(self._bounds(layer))
        return to_index

    def update(self, layer_id: str, **changes: Any) -> Layer:
        """Replace some fields of a layer; returns the previous layer (for undo)."""
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise LayerError(f"Layers have no editable field {sorted(unknown)[0]!r}.")
        index = self.index_of(layer_id)
        before = self._layers[index]
        after = before.with_changes(**changes)
        self._layers[index] = after
        dirty = _union(self._bounds(before), self._bounds(after))
        for name in changes:
            self.layer_changed.emit(layer_id, name)
        self._emit_changed(dirty)
        return before

    def replace_layer(self, layer: Layer) -> Layer:
        """Put ``layer`` in place of the layer with the same id; returns the previous one."""
        index = self.index_of(layer.id)
        before = self._layers[index]
        self._layers[index] = layer
        for name in EDITABLE_FIELDS:
            old, new = getattr(before, name), getattr(layer, name)
            if old is not new and (name == "pixels" or old != new):
                self.layer_changed.emit(layer.id, name)
        self._emit_changed(_union(self._bounds(before), self._bounds(layer)))
        return before

    # ---- composite ----------------------------------------------------------

    def composite_premultiplied(self) -> np.ndarray:
        """The composite as uint8 premultiplied RGBA (H, W, 4): QImage.Format_RGBA8888_Premultiplied.

        Read-only and updated in place by later calls; copy it to keep it.
        """
        return self._compositor.composite_u8(self._layers, self._size)

    def composite_float(self) -> np.ndarray:
        """The composite as planar float32 premultiplied RGBA (4, H, W) in [0, 1].

        Read-only, valid until the next call.
        """
        return self._compositor.composite(self._layers, self._size)

    def composite_rgba(self) -> np.ndarray:
        """The composite as straight-alpha RGBA uint8 (H, W, 4), a new array, for export."""
        return to_straight_u8(self.composite_float())

    @property
    def preview_factor(self) -> int:
        """How much ``composite_preview`` reduces the canvas (1: the preview is the exact composite)."""
        return preview_factor(self._size)

    def composite_preview(self) -> tuple[np.ndarray, int]:
        """A composite to show while an edit is moving, and the factor f it is reduced by.

        uint8 premultiplied RGBA of ceil(H/f) x ceil(W/f): every f-th canvas pixel,
        cheap enough for every mouse move of a drag on a large stack. Never final:
        show ``composite_premultiplied`` once the edit stops. When f is 1 it is that
        exact composite. Read-only, valid until the next call.
        """
        factor = self.preview_factor
        if factor == 1:
            return self.composite_premultiplied(), 1
        return self._preview.composite_u8(self._layers, self._size, factor), factor

    def prepare_edit(self, layer_id: str | None = None) -> Future[None]:
        """Get ready to show a moving edit of ``layer_id`` (a layer drag or an opacity
        slider is pressed): on a background thread, bring the composite that
        ``composite_preview`` draws up to date and build the caches an edit of that
        layer needs, so the first update of the drag costs what the later ones do.
        With no layer, only bring it up to date (the canvas does so once it shows the
        exact composite, so that a press finds little left to do).

        It changes no result. A composite call made before the work is done waits for
        it; the returned future says when it is done.
        """
        index = None if layer_id is None else self.index_of(layer_id)
        factor = self.preview_factor
        if factor == 1:
            return self._compositor.prepare_edit(self._layers, self._size, index)
        return self._preview.prepare_edit(self._layers, self._size, factor, index)

    @property
    def last_dirty(self) -> Rect | None:
        """The rectangle (x0, y0, x1, y1) the last composite call recomputed, or None."""
        return self._compositor.last_dirty

    # ---- internals ------------------------------------------------------------

    def _bounds(self, layer: Layer) -> Rect:
        x, y = layer.offset
        return (x, y, x + layer.width, y + layer.height)

    def _emit_changed(self, rect: Rect | None) -> None:
        w, h = self._size
        if rect is None:
            return
        x0, y0 = max(rect[0], 0), max(rect[1], 0)
        x1, y1 = min(rect[2], w), min(rect[3], h)
        if x0 < x1 and y0 < y1:
            self.changed.emit(x0, y0, x1 - x0, y1 - y0)


def _union(a: Rect, b: Rect) -> Rect:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
