"""Blend modes and the cached layer compositor (numpy, premultiplied alpha).

Colours are float32 in [0, 1], premultiplied by alpha, and planar: shaped
(4, H, W), because numpy runs several times faster over contiguous planes than
over interleaved RGBA.
Each blend mode follows the W3C "Compositing and Blending Level 1" formulas
for a separable blend function B(Cb, Cs) followed by source-over:

    co = cs·(1 − ab) + cb·(1 − as) + as·ab·B(Cb, Cs)
    ao = as + ab·(1 − as)

with cs, cb premultiplied and Cs = cs/as, Cb = cb/ab. Every ``as·ab·B`` term
below is rewritten without division so that transparent pixels need no care.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np


class BlendMode(str, Enum):
    """How a layer's colour combines with the composite below it."""

    NORMAL = "normal"
    MULTIPLY = "multiply"
    SCREEN = "screen"
    OVERLAY = "overlay"
    DARKEN = "darken"
    LIGHTEN = "lighten"
    DIFFERENCE = "difference"

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def composite_op(self) -> str:
        """The OpenRaster ``composite-op`` name of this mode."""
        return "svg:src-over" if self is BlendMode.NORMAL else f"svg:{self.value}"

    @classmethod
    def from_composite_op(cls, op: str) -> BlendMode:
        name = op.removeprefix("svg:")
        return cls.NORMAL if name == "src-over" else cls(name)


Rect = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in canvas pixels, half-open."""


def premultiply(
    rgba: np.ndarray, opacity: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """uint8 straight-alpha RGBA (H, W, 4) -> planar float32 premultiplied (4, H, W) in [0, 1].

    ``opacity`` scales the alpha before it multiplies the colour: the layer as it is blended.
    Written into ``out`` when given (float32 (4, H, W)).
    """
    if out is None:
        out = np.empty((4, *rgba.shape[:2]), np.float32)
    np.multiply(rgba.transpose(2, 0, 1), np.float32(1.0 / 255.0), out=out)
    if opacity != 1.0:
        out[3] *= np.float32(opacity)
    out[:3] *= out[3:4]
    return out


def to_premultiplied_u8(premul: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Planar float32 premultiplied -> uint8 premultiplied (H, W, 4), QImage's RGBA8888_Premultiplied."""
    scaled = np.multiply(premul, np.float32(255.0), out=_scratch(_U8_SLOT, premul.shape))
    scaled += np.float32(0.5)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    if out is None:
        out = np.empty((*premul.shape[1:], 4), np.uint8)
    out[...] = scaled.transpose(1, 2, 0)  # the cast truncates, so +0.5 rounds
    return out


def to_straight_u8(premul: np.ndarray) -> np.ndarray:
    """Planar float32 premultiplied -> uint8 straight-alpha RGBA (H, W, 4), for export."""
    alpha = premul[3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.where(alpha > 0, premul[:3] / np.maximum(alpha, 1e-12), 0.0)
    out = np.concatenate([colour, alpha], axis=0) * 255.0 + 0.5
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8).transpose(1, 2, 0).copy()


def blend_into(src: np.ndarray, dst: np.ndarray, mode: BlendMode) -> np.ndarray:
    """Composite planar premultiplied ``src`` onto ``dst`` in place (opacity already in ``src``).

    Each mode's ``co`` is the W3C formula regrouped to fewer array passes; with
    a = as·cb and b = ab·cs the cross terms cancel to cs + cb − max(a, b)
    (darken), − min(a, b) (lighten), − 2·min(a, b) (difference) and − cs·cb
    (screen). Exactness only needs every path to call this one function.

    Intermediate arrays are this thread's scratch arrays (``_scratch``), each
    computed by the same operations in the same order as the plain expression
    in the comment beside it, so the result is the same bit for bit.
    """
    as_ = src[3:4]
    ab = dst[3:4]
    cs = src[:3]
    cb = dst[:3]
    alpha_shape, colour_shape = ab.shape, cb.shape
    inv_as = np.subtract(1.0, as_, out=_scratch(0, alpha_shape))  # 1.0 - as_
    if mode is BlendMode.NORMAL:
        dst *= inv_as
        dst += src
        return dst
    if mode is BlendMode.SCREEN:
        product = np.multiply(cs, cb, out=_scratch(1, colour_shape))  # cs * cb
        cb += cs
        cb -= product
    elif mode in (BlendMode.DARKEN, BlendMode.LIGHTEN, BlendMode.DIFFERENCE):
        a = np.multiply(as_, cb, out=_scratch(1, colour_shape))  # as_ * cb
        b = np.multiply(ab, cs, out=_scratch(2, colour_shape))  # ab * cs
        if mode is BlendMode.DARKEN:
            np.maximum(a, b, out=a)
        else:
            np.minimum(a, b, out=a)
            if mode is BlendMode.DIFFERENCE:
                a += a
        cb += cs
        cb -= a
    elif mode is BlendMode.MULTIPLY:
        # cs·(1 − ab) + cs·cb = cs·(1 − ab + cb)
        term = np.subtract(cb, ab, out=_scratch(1, colour_shape))  # cb - ab
        term += 1.0
        term *= cs
        cb *= inv_as
        cb += term
    elif mode is BlendMode.OVERLAY:
        # Overlay is hard-light with the layers swapped: multiply where Cb <= 0.5, screen above.
        low = np.multiply(2.0, cs, out=_scratch(1, colour_shape))  # 2.0 * cs * cb
        low *= cb
        high = np.subtract(
            ab, cb, out=_scratch(2, colour_shape)
        )  # as_ * ab - 2.0 * (ab - cb) * (as_ - cs)
        high *= 2.0
        high *= np.subtract(as_, cs, out=_scratch(3, colour_shape))
        np.subtract(np.multiply(as_, ab, out=_scratch(4, alpha_shape)), high, out=high)
        twice_cb = np.multiply(2.0, cb, out=_scratch(3, colour_shape))
        _select(twice_cb <= ab, low, high)  # np.where(2.0 * cb <= ab, low, high)
        term = np.multiply(cs, np.subtract(1.0, ab, out=_scratch(4, alpha_shape)), out=low)
        term += high  # cs * (1.0 - ab) + that choice
        cb *= inv_as
        cb += term
    else:
        raise ValueError(f"Unknown blend mode {mode!r}.")
    ab *= inv_as
    ab += as_
    return dst


_SCRATCH_MAX = 4 * 1024 * 1024
"""Elements (16 MB of float32) up to which a scratch array is kept for reuse; a band is far smaller."""

_thread_scratch = threading.local()
_BAND_SLOT, _U8_SLOT = 10, 11
"""The compositor's band and ``to_premultiplied_u8``'s scaled copy (``blend_into`` uses 0 to 6)."""


def _scratch(slot: int, shape: tuple[int, ...]) -> np.ndarray:
    """This thread's float32 scratch array number ``slot``, reshaped to ``shape`` (contents undefined).

    Reused rather than allocated because a fresh band-sized temporary is served by
    fresh pages from the system, and their page faults cost more than the arithmetic.
    """
    size = math.prod(shape)
    if size > _SCRATCH_MAX:
        return np.empty(shape, np.float32)
    arrays = getattr(_thread_scratch, "arrays", None)
    if arrays is None:
        arrays = _thread_scratch.arrays = {}
    flat = arrays.get(slot)
    if flat is None or flat.size < size:
        flat = arrays[slot] = np.empty(size, np.float32)
    return flat[:size].reshape(shape)


def _select(condition: np.ndarray, chosen: np.ndarray, other: np.ndarray) -> None:
    """Set ``other`` to ``chosen`` where ``condition`` holds, bit for bit: ``np.where`` in place.

    Done on the bits (other ^= (other ^ chosen) & mask) because numpy's masked
    copies branch per element, which costs ten times the arithmetic on the
    unpredictable masks of an image.
    """
    mask = _scratch(5, condition.shape).view(np.uint32)
    np.copyto(mask, condition)
    np.negative(mask, out=mask)  # 1 -> all ones
    bits = other.view(np.uint32)
    flips = np.bitwise_xor(
        bits, chosen.view(np.uint32), out=_scratch(6, bits.shape).view(np.uint32)
    )
    flips &= mask
    bits ^= flips


def blend(src: np.ndarray, dst: np.ndarray, mode: BlendMode, opacity: float = 1.0) -> np.ndarray:
    """Composite planar premultiplied ``src`` onto ``dst`` (both (4, H, W)); returns a new array."""
    src = src * np.float32(opacity) if opacity != 1.0 else src
    return blend_into(src, dst.copy(), mode)


class CompositeLayer(Protocol):
    """What the compositor needs from a layer (``studio.document.layers.Layer`` fits)."""

    id: str
    pixels: np.ndarray
    visible: bool
    opacity: float
    blend: BlendMode
    offset: tuple[int, int]


@dataclass(frozen=True)
class _Key:
    """Everything about a layer that changes its contribution to the composite."""

    id: str
    pixels: int  # id() of the pixel array; ``array`` keeps it alive so that id stays unique
    visible: bool
    opacity: float
    blend: BlendMode
    offset: tuple[int, int]
    shape: tuple[int, ...]
    array: np.ndarray = field(compare=False, repr=False)

    @classmethod
    def of(cls, layer: CompositeLayer) -> _Key:
        return cls(
            layer.id,
            id(layer.pixels),
            layer.visible,
            float(layer.opacity),
            layer.blend,
            tuple(layer.offset),
            layer.pixels.shape,
            layer.pixels,
        )


BAND_ROWS = 64
"""Rows per band: a band of a 1024-wide canvas is 1 MB of float32 RGBA, which stays in cache."""

_pool: ThreadPoolExecutor | None = None
_preparer: ThreadPoolExecutor | None = None


def _band_pool() -> ThreadPoolExecutor | None:
    """Threads for bands (numpy releases the GIL in its loops); None on a single core."""
    global _pool
    workers = min(8, os.cpu_count() or 1)
    if workers < 2:
        return None
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="composite")
    return _pool


def _prepare_thread() -> ThreadPoolExecutor:
    """The one thread that builds caches ahead of an edit (``Compositor.prepare_edit``)."""
    global _preparer
    if _preparer is None:
        _preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="composite-prepare")
    return _preparer


def _intersect(a: Rect, b: Rect) -> Rect | None:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def _union(a: Rect | None, b: Rect | None) -> Rect | None:
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def layer_bounds(key_or_layer, canvas: Rect) -> Rect | None:
    """The canvas rectangle a layer covers (clipped), or None if it lies outside."""
    h, w = (
        key_or_layer.shape[:2] if isinstance(key_or_layer, _Key) else key_or_layer.pixels.shape[:2]
    )
    x, y = key_or_layer.offset
    return _intersect((x, y, x + w, y + h), canvas)


class Compositor:
    """Composites a layer stack and redraws only what changed.

    Per layer it keeps the premultiplied float pixels. For the common edit of
    one layer (an opacity or position drag, a blend or visibility toggle) it
    keeps the composite *below* that layer, so an update blends the edited
    layer and the layers above it over the changed rectangle only. Any other
    change recomputes the changed rectangle through the whole stack.

    Exactness: by default every result is bit for bit the composite from
    scratch, because each pixel goes through the same float operations in the
    same order whichever path computed it (tested). With
    ``group_normal_above`` the layers above the edited one are also kept as
    one group when they all blend normally (src-over is associative), which
    makes an update two blends but differs from the sequential result by
    float rounding; only the preview uses it.

    Threading: ``prepare_edit`` does its work on a background thread; every
    other call first waits for it to finish, so the compositor is only ever
    used by one thread at a time.
    """

    def __init__(self, group_normal_above: bool = False) -> None:
        self._group_normal_above = group_normal_above
        self._size: tuple[int, int] = (0, 0)
        self._keys: list[_Key] = []
        self._result: np.ndarray | None = None
        self._result_u8: np.ndarray | None = None
        self._premul: dict[str, tuple[np.ndarray, float, np.ndarray]] = {}
        self._below: tuple[int, tuple[_Key, ...], np.ndarray] | None = None
        self._above: tuple[int, tuple[_Key, ...], np.ndarray | None] | None = None
        self._last_dirty: Rect | None = None
        self._pending: Future[None] | None = None

    # ---- public -------------------------------------------------------------

    @property
    def last_dirty(self) -> Rect | None:
        """The rectangle (x0, y0, x1, y1) the last composite (or preparation) recomputed, or None."""
        self._wait()
        return self._last_dirty

    def composite(self, layers: Sequence[CompositeLayer], size: tuple[int, int]) -> np.ndarray:
        """Planar premultiplied float32 (4, H, W) composite; read-only, valid until the next call."""
        self._wait()
        self._update(layers, size)
        assert self._result is not None
        view = self._result.view()
        view.flags.writeable = False
        return view

    def composite_u8(self, layers: Sequence[CompositeLayer], size: tuple[int, int]) -> np.ndarray:
        """uint8 premultiplied RGBA composite; read-only, valid until the next call."""
        self._wait()
        self._update(layers, size)
        assert self._result_u8 is not None
        view = self._result_u8.view()
        view.flags.writeable = False
        return view

    def prepare_edit(
        self, layers: Sequence[CompositeLayer], size: tuple[int, int], index: int | None = None
    ) -> Future[None]:
        """Bring the composite up to date on a background thread and, for ``index``, build
        what an edit of ``layers[index]`` needs: the composite below it (and the group
        above it). Then the first update of that edit costs what the later ones do.

        Call it when a gesture starts (a mouse press, a slider press) so that the work
        is done between the press and the first move, off the calling thread. It only
        moves work: every result stays what it would have been without it. Returns the
        future of that work (an error in it resets the caches; the next call recomputes).
        """
        layers = tuple(layers)
        size = (int(size[0]), int(size[1]))

        def work() -> None:
            try:
                self._update(layers, size)
                if index is not None and 0 <= index < len(layers):
                    self._edit_caches(layers, self._keys, index)
            except BaseException:
                self._result = None
                raise

        # Not waiting for an earlier preparation: the one thread runs them in order, so
        # waiting for the newest waits for all.
        self._pending = _prepare_thread().submit(work)
        return self._pending

    # ---- internals ----------------------------------------------------------

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            futures.wait([pending])

    def _canvas(self) -> Rect:
        return (0, 0, self._size[0], self._size[1])

    def _layer_premul(self, layer: CompositeLayer) -> np.ndarray:
        """The layer as it is blended: premultiplied, its opacity applied; kept until either changes."""
        opacity = float(layer.opacity)
        cached = self._premul.get(layer.id)
        if cached is not None and cached[0] is layer.pixels and cached[1] == opacity:
            return cached[2]
        # Into the array it replaces, if it fits: an opacity drag changes it on every update,
        # and a fresh layer-sized array costs more in page faults than the arithmetic.
        h, w = layer.pixels.shape[:2]
        reused = cached[2] if cached is not None and cached[2].shape == (4, h, w) else None
        arr = premultiply(layer.pixels, opacity, out=reused)
        self._premul[layer.id] = (layer.pixels, opacity, arr)
        return arr

    def _apply(self, layer: CompositeLayer, key: _Key, x: np.ndarray, region: Rect) -> np.ndarray:
        """Blend one layer onto ``x`` (the composite restricted to ``region``), in place where possible."""
        if not key.visible or key.opacity <= 0.0:
            return x
        bounds = layer_bounds(key, self._canvas())
        if bounds is None:
            return x
        part = _intersect(bounds, region)
        if part is None:
            return x
        ox, oy = key.offset
        src = self._layer_premul(layer)[:, part[1] - oy : part[3] - oy, part[0] - ox : part[2] - ox]
        dst_slice = (
            slice(None),
            slice(part[1] - region[1], part[3] - region[1]),
            slice(part[0] - region[0], part[2] - region[0]),
        )
        blend_into(src, x[dst_slice], key.blend)
        return x

    def _compose(self, layers, keys, region: Rect, start: np.ndarray | None = None) -> np.ndarray:
        """``layers`` over ``start`` (else transparency) in ``region``: this thread's band array."""
        x0, y0, x1, y1 = region
        if start is None:
            x = _scratch(_BAND_SLOT, (4, y1 - y0, x1 - x0))
            x.fill(0.0)
        else:
            x = start
        for layer, key in zip(layers, keys, strict=True):
            x = self._apply(layer, key, x, region)
        return x

    def _set_result(self, region: Rect, values: np.ndarray) -> None:
        assert self._result is not None and self._result_u8 is not None
        x0, y0, x1, y1 = region
        self._result[:, y0:y1, x0:x1] = values
        to_premultiplied_u8(values, out=self._result_u8[y0:y1, x0:x1])

    def _banded(self, region: Rect, work: Callable[[Rect], None]) -> None:
        """Run ``work`` over horizontal bands of ``region``: cache-sized, and spread over cores."""
        x0, y0, x1, y1 = region
        bands = [(x0, y, x1, min(y + BAND_ROWS, y1)) for y in range(y0, y1, BAND_ROWS)]
        pool = _band_pool()
        if pool is None or len(bands) < 2:
            for band in bands:
                work(band)
        else:
            for _ in pool.map(work, bands):
                pass

    def _composed(self, layers, keys, region: Rect) -> np.ndarray:
        """The composite of ``layers`` alone over ``region``, as a new array, computed band by band."""
        x0, y0, x1, y1 = region
        out = np.empty((4, y1 - y0, x1 - x0), np.float32)

        def work(band: Rect) -> None:
            out[:, band[1] - y0 : band[3] - y0] = self._compose(layers, keys, band)

        self._banded(region, work)
        return out

    def _update(self, layers: Sequence[CompositeLayer], size: tuple[int, int]) -> None:
        keys = [_Key.of(layer) for layer in layers]
        for layer, key in zip(layers, keys, strict=True):
            if key.visible:
                self._layer_premul(layer)  # fill the cache before bands run in threads
        live = {key.id for key in keys}
        for stale in [k for k in self._premul if k not in live]:
            del self._premul[stale]
        if self._result is None or tuple(size) != self._size:
            self._size = (int(size[0]), int(size[1]))
            w, h = self._size
            self._result = np.zeros((4, h, w), np.float32)
            self._result_u8 = np.zeros((h, w, 4), np.uint8)
            self._below = self._above = None
            self._keys = []
            self._full(layers, keys)
            return
        if keys == self._keys:
            self._last_dirty = None
            return
        old = self._keys
        canvas = self._canvas()
        if len(old) == len(keys) and all(a.id == b.id for a, b in zip(old, keys, strict=True)):
            changed = [i for i, (a, b) in enumerate(zip(old, keys, strict=True)) if a != b]
            dirty: Rect | None = None
            for i in changed:
                dirty = _union(dirty, layer_bounds(old[i], canvas))
                dirty = _union(dirty, layer_bounds(keys[i], canvas))
            self._keys = keys
            self._last_dirty = dirty
            if dirty is None:
                return
            if len(changed) == 1:
                self._update_one(layers, keys, changed[0], dirty)
            else:
                self._banded(
                    dirty, lambda band: self._set_result(band, self._compose(layers, keys, band))
                )
            return
        self._full(layers, keys)

    def _full(self, layers, keys) -> None:
        canvas = self._canvas()
        self._keys = keys
        self._last_dirty = canvas if canvas[2] and canvas[3] else None
        if self._last_dirty is not None:
            self._banded(
                canvas, lambda band: self._set_result(band, self._compose(layers, keys, band))
            )

    def _edit_caches(self, layers, keys, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The composite below layer ``k`` and the group above it (None: blend them one by one)."""
        canvas = self._canvas()
        below_keys = tuple(keys[:k])
        if self._below is None or self._below[0] != k or self._below[1] != below_keys:
            self._below = (k, below_keys, self._composed(layers[:k], keys[:k], canvas))
        above_keys = tuple(keys[k + 1 :])
        if self._above is None or self._above[0] != k or self._above[1] != above_keys:
            groupable = self._group_normal_above and all(
                key.blend is BlendMode.NORMAL or not key.visible for key in above_keys
            )
            group = self._composed(layers[k + 1 :], keys[k + 1 :], canvas) if groupable else None
            self._above = (k, above_keys, group)
        return self._below[2], self._above[2]

    def _update_one(self, layers, keys: list[_Key], k: int, dirty: Rect) -> None:
        below, group = self._edit_caches(layers, keys, k)

        def work(band: Rect) -> None:
            x0, y0, x1, y1 = band
            x = _scratch(_BAND_SLOT, (4, y1 - y0, x1 - x0))
            np.copyto(x, below[:, y0:y1, x0:x1])
            x = self._apply(layers[k], keys[k], x, band)
            if group is not None:
                x = blend_into(group[:, y0:y1, x0:x1], x, BlendMode.NORMAL)
            else:
                x = self._compose(layers[k + 1 :], keys[k + 1 :], band, start=x)
            self._set_result(band, x)

        self._banded(dirty, work)


PREVIEW_PIXELS = 512 * 512
"""The most pixels a preview composite holds: it must composite nine blended layers within a frame."""


def preview_factor(size: tuple[int, int], budget: int | None = None) -> int:
    """The smallest integer reduction that brings a canvas of ``size`` within ``budget`` pixels."""
    budget = PREVIEW_PIXELS if budget is None else budget
    w, h = size
    factor = 1
    while -(-w // factor) * -(-h // factor) > budget:
        factor += 1
    return factor


def _reduced(size: tuple[int, int], factor: int) -> tuple[int, int]:
    w, h = size
    return (-(-w // factor), -(-h // factor))


@dataclass(frozen=True)
class _SampledLayer:
    """A layer as the preview sees it: every ``factor``-th canvas pixel of it."""

    id: str
    pixels: np.ndarray
    visible: bool
    opacity: float
    blend: BlendMode
    offset: tuple[int, int]


class PreviewCompositor:
    """A reduced-resolution composite to show while an edit is still moving.

    Each preview pixel (px, py) samples canvas pixel (px·f, py·f) of every
    layer, so the preview is the exact composite taken every f-th pixel, up to
    the float rounding of grouping normal layers (``Compositor`` with
    ``group_normal_above``). It costs about 1/f² of the full composite. It is
    never final: the canvas replaces it by the exact composite once the edit
    stops, and nothing exported or saved reads it. ``prepare_edit`` builds its
    caches on a background thread, as ``Compositor.prepare_edit`` does.
    """

    def __init__(self) -> None:
        self._compositor = Compositor(group_normal_above=True)
        self._samples: dict[str, tuple[np.ndarray, int, tuple[int, int], np.ndarray]] = {}

    def composite_u8(
        self, layers: Sequence[CompositeLayer], size: tuple[int, int], factor: int
    ) -> np.ndarray:
        """uint8 premultiplied RGBA (ceil(H/f), ceil(W/f), 4); read-only, valid until the next call."""
        return self._compositor.composite_u8(
            self._sampled_stack(layers, factor), _reduced(size, factor)
        )

    def prepare_edit(
        self,
        layers: Sequence[CompositeLayer],
        size: tuple[int, int],
        factor: int,
        index: int | None = None,
    ) -> Future[None]:
        """Build, on a background thread, the reduced layers and the caches an edit of
        ``layers[index]`` needs (see ``Compositor.prepare_edit``); returns that work's future."""
        return self._compositor.prepare_edit(
            self._sampled_stack(layers, factor), _reduced(size, factor), index
        )

    def _sampled_stack(self, layers: Sequence[CompositeLayer], factor: int) -> list[_SampledLayer]:
        sampled = [self._sampled(layer, factor) for layer in layers]
        live = {layer.id for layer in layers}
        for stale in [k for k in self._samples if k not in live]:
            del self._samples[stale]
        return sampled

    def _sampled(self, layer: CompositeLayer, factor: int) -> _SampledLayer:
        ox, oy = layer.offset
        phase = ((-ox) % factor, (-oy) % factor)
        cached = self._samples.get(layer.id)
        if (
            cached is not None
            and cached[0] is layer.pixels
            and cached[1] == factor
            and cached[2] == phase
        ):
            pixels = cached[3]
        else:
            # A view, not a copy: the same view object while the phase stays keeps the
            # compositor's premultiplied cache for this layer.
            pixels = layer.pixels[phase[1] :: factor, phase[0] :: factor]
            self._samples[layer.id] = (layer.pixels, factor, phase, pixels)
        return _SampledLayer(
            layer.id,
            pixels,
            layer.visible,
            layer.opacity,
            layer.blend,
            (-((-ox) // factor), -((-oy) // factor)),
        )
