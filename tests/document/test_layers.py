"""Layer stack model and numpy compositing, checked against the W3C reference formulas."""

from __future__ import annotations

import numpy as np
import pytest

from studio.document import compositing
from studio.document.compositing import (
    BlendMode,
    Compositor,
    PreviewCompositor,
    blend,
    premultiply,
    preview_factor,
    to_straight_u8,
)
from studio.document.layers import Layer, LayerError, LayerStack
from tests.compositing_work import CompositingWork

# ---- reference: the W3C spec written literally, in straight alpha ------------


def _reference_b(mode: BlendMode, cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """B(Cb, Cs) exactly as written in Compositing and Blending Level 1, section 10."""
    if mode is BlendMode.NORMAL:
        return cs
    if mode is BlendMode.MULTIPLY:
        return cb * cs
    if mode is BlendMode.SCREEN:
        return cb + cs - cb * cs
    if mode is BlendMode.OVERLAY:
        # HardLight(Cs=Cb, Cb=Cs)
        hard_cs, hard_cb = cb, cs
        return np.where(
            hard_cs <= 0.5,
            hard_cb * 2 * hard_cs,
            hard_cb + (2 * hard_cs - 1) - hard_cb * (2 * hard_cs - 1),
        )
    if mode is BlendMode.DARKEN:
        return np.minimum(cb, cs)
    if mode is BlendMode.LIGHTEN:
        return np.maximum(cb, cs)
    if mode is BlendMode.DIFFERENCE:
        return np.abs(cb - cs)
    raise AssertionError(mode)


def _reference_composite(src: np.ndarray, dst: np.ndarray, mode: BlendMode, opacity: float):
    """Straight-alpha float64 inputs in [0,1]; returns straight colour and alpha."""
    cs, as_ = src[..., :3], src[..., 3:4] * opacity
    cb, ab = dst[..., :3], dst[..., 3:4]
    mixed = (1 - ab) * cs + ab * _reference_b(mode, cb, cs)  # "Cs = (1 - αb) x Cs + αb x B(Cb, Cs)"
    co = as_ * mixed + ab * cb * (1 - as_)  # source-over, premultiplied result
    ao = as_ + ab * (1 - as_)
    colour = np.where(ao > 0, co / np.where(ao > 0, ao, 1), 0)
    return colour, ao


def _random_rgba(rng: np.random.Generator, shape=(32, 48)) -> np.ndarray:
    rgba = rng.random((*shape, 4))
    # include the edge cases: fully transparent, fully opaque, exact 0.5 for overlay's branch
    rgba[0, :, 3] = 0.0
    rgba[1, :, 3] = 1.0
    rgba[2, :, :3] = 0.5
    return rgba


@pytest.mark.parametrize("mode", list(BlendMode))
@pytest.mark.parametrize("opacity", [1.0, 0.37])
def test_blend_matches_w3c_reference(mode: BlendMode, opacity: float) -> None:
    rng = np.random.default_rng(hash(mode.value) % 2**32)
    src, dst = _random_rgba(rng), _random_rgba(rng)
    pre_src = src.copy()
    pre_src[..., :3] *= pre_src[..., 3:4]
    pre_dst = dst.copy()
    pre_dst[..., :3] *= pre_dst[..., 3:4]
    planar = lambda a: np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)  # noqa: E731
    out = blend(planar(pre_src), planar(pre_dst), mode, opacity).transpose(1, 2, 0)
    ref_colour, ref_alpha = _reference_composite(src, dst, mode, opacity)
    np.testing.assert_allclose(out[..., 3:4], ref_alpha, atol=1e-5)
    ref_premul = ref_colour * ref_alpha
    np.testing.assert_allclose(out[..., :3], ref_premul, atol=1e-5)


def _plain_blend_into(src: np.ndarray, dst: np.ndarray, mode: BlendMode) -> np.ndarray:
    """``blend_into``'s arithmetic written as plain expressions, each making new arrays."""
    as_, ab, cs, cb = src[3:4], dst[3:4], src[:3], dst[:3]
    inv_as = 1.0 - as_
    if mode is BlendMode.NORMAL:
        return dst * inv_as + src
    if mode is BlendMode.SCREEN:
        colour = (cb + cs) - cs * cb
    elif mode is BlendMode.MULTIPLY:
        colour = cb * inv_as + ((cb - ab) + 1.0) * cs
    elif mode is BlendMode.OVERLAY:
        low = 2.0 * cs * cb
        high = as_ * ab - 2.0 * (ab - cb) * (as_ - cs)
        colour = cb * inv_as + (cs * (1.0 - ab) + np.where(2.0 * cb <= ab, low, high))
    else:
        a, b = as_ * cb, ab * cs
        chosen = {
            BlendMode.DARKEN: lambda: np.maximum(a, b),
            BlendMode.LIGHTEN: lambda: np.minimum(a, b),
            BlendMode.DIFFERENCE: lambda: np.minimum(a, b) + np.minimum(a, b),
        }[mode]()
        colour = (cb + cs) - chosen
    return np.concatenate([colour, ab * inv_as + as_])


@pytest.mark.parametrize("mode", list(BlendMode))
def test_blending_in_place_gives_the_plain_expressions_bits(mode: BlendMode) -> None:
    """Scratch arrays and the bitwise select change no bit of any mode's result."""
    rng = np.random.default_rng(4)
    src, dst = (rng.integers(0, 256, (70, 90, 4), dtype=np.uint8) for _ in range(2))
    src[..., 3][rng.random((70, 90)) < 0.2] = 0
    dst[..., 3][rng.random((70, 90)) < 0.2] = 255
    pre_src, pre_dst = premultiply(src, 0.7), premultiply(dst)
    expected = _plain_blend_into(pre_src, pre_dst.copy(), mode)
    for region in (np.s_[:, :, :], np.s_[:, 3:61, 5:77]):  # whole, and a strided view
        out = pre_dst.copy()
        compositing.blend_into(pre_src[region], out[region], mode)
        assert out[region].tobytes() == expected[region].tobytes()


def test_blend_modes_give_distinct_results() -> None:
    rng = np.random.default_rng(1)
    src = premultiply((rng.random((8, 8, 4)) * 255).astype(np.uint8))
    dst = premultiply((rng.random((8, 8, 4)) * 255).astype(np.uint8))
    results = {mode: blend(src, dst, mode).round(5).tobytes() for mode in BlendMode}
    assert len(set(results.values())) == len(BlendMode)


def test_known_values_multiply_and_screen_on_opaque() -> None:
    src = np.array([0.5, 0.25, 1.0, 1.0], np.float32).reshape(4, 1, 1)
    dst = np.array([0.5, 1.0, 0.0, 1.0], np.float32).reshape(4, 1, 1)
    np.testing.assert_allclose(blend(src, dst, BlendMode.MULTIPLY)[:, 0, 0], [0.25, 0.25, 0.0, 1.0])
    np.testing.assert_allclose(blend(src, dst, BlendMode.SCREEN)[:, 0, 0], [0.75, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(
        blend(src, dst, BlendMode.DIFFERENCE)[:, 0, 0], [0.0, 0.75, 1.0, 1.0]
    )


def test_composite_op_names_round_trip() -> None:
    assert BlendMode.NORMAL.composite_op == "svg:src-over"
    assert BlendMode.MULTIPLY.composite_op == "svg:multiply"
    for mode in BlendMode:
        assert BlendMode.from_composite_op(mode.composite_op) is mode


# ---- the model --------------------------------------------------------------


def _solid(w: int, h: int, rgba: tuple[int, int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgba, np.uint8), (h, w, 4)).copy()


def test_layer_validates_and_is_read_only() -> None:
    layer = Layer(_solid(4, 3, (1, 2, 3, 4)), name="a")
    assert layer.pixels.shape == (3, 4, 4)
    with pytest.raises(ValueError):
        layer.pixels[0, 0, 0] = 9
    with pytest.raises(LayerError):
        Layer(np.zeros((2, 2, 4), np.float32))
    with pytest.raises(LayerError):
        Layer(_solid(2, 2, (0, 0, 0, 0)), opacity=1.5)
    rgb = Layer(np.zeros((2, 2, 3), np.uint8))
    assert rgb.pixels[..., 3].min() == 255
    copy = layer.duplicate()
    assert copy.id != layer.id and copy.name == "a copy" and copy.pixels is layer.pixels


def test_stack_signals_and_edits(qtbot) -> None:
    stack = LayerStack()
    seen: list[tuple] = []
    stack.layer_inserted.connect(lambda i: seen.append(("ins", i)))
    stack.layer_removed.connect(lambda i, lid: seen.append(("rem", i)))
    stack.layer_moved.connect(lambda a, b: seen.append(("mov", a, b)))
    stack.layer_changed.connect(lambda lid, name: seen.append(("chg", name)))
    a = Layer(_solid(8, 6, (255, 0, 0, 255)), name="a")
    b = Layer(_solid(4, 4, (0, 255, 0, 255)), name="b")
    stack.add(a)
    assert stack.size == (8, 6)  # taken from the first layer
    stack.add(b)
    with qtbot.waitSignal(stack.changed) as blocker:
        stack.update(b.id, offset=(2, 1))
    # dirty rect covers the old and the new position
    assert blocker.args == [0, 0, 6, 5]
    stack.move(b.id, 0)
    assert [layer.name for layer in stack] == ["b", "a"]
    previous = stack.update(a.id, opacity=0.5, name="renamed")
    assert previous.opacity == 1.0 and stack.layer(a.id).name == "renamed"
    stack.remove(b.id)
    assert len(stack) == 1
    assert seen == [
        ("ins", 0),
        ("ins", 1),
        ("chg", "offset"),
        ("mov", 1, 0),
        ("chg", "opacity"),
        ("chg", "name"),
        ("rem", 0),
    ]
    with pytest.raises(LayerError):
        stack.update(a.id, colour=1)
    with pytest.raises(LayerError):
        stack.index_of("missing")
    with pytest.raises(LayerError):
        stack.add(stack[0])


def test_composite_places_offsets_and_respects_visibility() -> None:
    stack = LayerStack(6, 4)
    stack.add(Layer(_solid(6, 4, (0, 0, 255, 255)), name="bg"))
    top = Layer(_solid(2, 2, (255, 0, 0, 255)), offset=(3, 1), name="red")
    stack.add(top)
    out = stack.composite_rgba()
    assert out[1, 3].tolist() == [255, 0, 0, 255]
    assert out[2, 4].tolist() == [255, 0, 0, 255]
    assert out[0, 0].tolist() == [0, 0, 255, 255]
    assert out[1, 5].tolist() == [0, 0, 255, 255]
    stack.update(top.id, visible=False)
    assert stack.composite_rgba()[1, 3].tolist() == [0, 0, 255, 255]
    stack.update(top.id, visible=True, opacity=0.5)
    assert stack.composite_rgba()[1, 3].tolist() == [128, 0, 128, 255]
    # a layer partly outside the canvas is clipped, not an error
    stack.update(top.id, offset=(5, -1), opacity=1.0)
    out = stack.composite_rgba()
    assert out[0, 5].tolist() == [255, 0, 0, 255] and out[1, 5].tolist() == [0, 0, 255, 255]
    stack.update(top.id, offset=(100, 100))
    assert (stack.composite_rgba()[..., 2] == 255).all()


def _uncached(layers, size) -> np.ndarray:
    return Compositor().composite(layers, size).copy()


def _assert_exact(stack: LayerStack) -> None:
    """The stack's cached composite is bit for bit a composite from scratch, float and uint8."""
    fresh = Compositor()
    assert np.array_equal(stack.composite_float(), fresh.composite(stack.layers, stack.size))
    assert np.array_equal(
        stack.composite_premultiplied(), fresh.composite_u8(stack.layers, stack.size)
    )


def _random_stack(modes, size=(40, 30), seed=7) -> LayerStack:
    rng = np.random.default_rng(seed)
    stack = LayerStack(*size)
    for i, mode in enumerate(modes):
        pixels = (rng.random((20 + i, 25, 4)) * 255).astype(np.uint8)
        stack.add(Layer(pixels, name=f"l{i}", blend=mode, offset=(i * 2, i), opacity=0.9))
    return stack


def test_cached_updates_equal_a_fresh_composite() -> None:
    """Each kind of edit, applied through the cache, matches compositing from scratch exactly."""
    modes = list(BlendMode)
    stack = _random_stack([modes[i % len(modes)] for i in range(6)])
    ids = [layer.id for layer in stack]
    edits = [
        (ids[2], {"opacity": 0.3}),
        (ids[2], {"opacity": 0.6}),  # a drag: same layer again, uses the cache below
        (ids[2], {"offset": (10, 8)}),
        (ids[4], {"blend": BlendMode.SCREEN}),
        (ids[0], {"visible": False}),
        (ids[5], {"opacity": 0.1}),
    ]
    stack.composite_float()
    for layer_id, change in edits:
        stack.update(layer_id, **change)
        _assert_exact(stack)
    # an all-normal stack above the edited layer: still exact, no grouped shortcut
    for layer_id in ids[3:]:
        stack.update(layer_id, blend=BlendMode.NORMAL)
    for opacity in (0.2, 0.8):
        stack.update(ids[1], opacity=opacity)
        _assert_exact(stack)
    stack.move(ids[1], 4)
    stack.remove(ids[3])
    _assert_exact(stack)


@pytest.mark.parametrize("mode", list(BlendMode))
@pytest.mark.parametrize("edited", ["bottom", "middle", "top"])
def test_a_drag_through_the_cache_is_exact_for_every_mode_and_position(
    mode: BlendMode, edited: str
) -> None:
    others = list(BlendMode)
    modes = [mode] * 3 + [others[i % len(others)] for i in range(4)]  # same-mode and mixed runs
    stack = _random_stack(modes, seed=len(edited) + len(mode.value))
    index = {"bottom": 0, "middle": 3, "top": len(stack) - 1}[edited]
    stack.update(stack[index].id, blend=mode)
    layer_id = stack[index].id
    stack.composite_float()
    for step in range(4):  # an opacity drag, then a position drag
        stack.update(layer_id, opacity=0.2 + 0.2 * step)
        _assert_exact(stack)
    for step in range(3):
        stack.update(layer_id, offset=(step * 3 - 2, 5 - step * 4))
        _assert_exact(stack)


def test_edits_around_the_dragged_layer_invalidate_its_cache() -> None:
    modes = list(BlendMode)
    stack = _random_stack([modes[(i + 3) % len(modes)] for i in range(7)], seed=11)
    ids = [layer.id for layer in stack]
    dragged = ids[3]

    def drag() -> None:
        for opacity in (0.35, 0.65):
            stack.update(dragged, opacity=opacity)
            _assert_exact(stack)

    drag()
    for edit in (
        lambda: stack.update(ids[1], visible=False),  # below
        lambda: stack.update(ids[5], visible=False),  # above
        lambda: stack.update(ids[0], opacity=0.4),
        lambda: stack.update(ids[6], opacity=0.2),
        lambda: stack.update(ids[2], offset=(-3, 7)),
        lambda: stack.update(ids[4], offset=(9, -2)),
        lambda: stack.update(ids[2], blend=BlendMode.DIFFERENCE),
        lambda: stack.update(ids[2], pixels=np.full((5, 6, 4), 200, np.uint8)),
        lambda: stack.move(ids[0], 5),  # reorder: below becomes above
        lambda: stack.move(dragged, 0),  # the dragged layer itself moves
    ):
        edit()
        _assert_exact(stack)
        drag()


def test_preview_factor_brings_the_canvas_within_the_budget() -> None:
    assert preview_factor((512, 512)) == 1
    assert preview_factor((1024, 1024)) == 2
    assert preview_factor((1025, 1024)) == 3
    assert preview_factor((4096, 2048)) == 6
    assert preview_factor((64, 64), budget=16 * 16) == 4


@pytest.mark.parametrize("modes", [[BlendMode.NORMAL] * 5, list(BlendMode)])
def test_the_preview_samples_the_exact_composite(monkeypatch, modes) -> None:
    """A preview pixel is the exact composite at every f-th canvas pixel, whatever the offsets."""
    monkeypatch.setattr(compositing, "PREVIEW_PIXELS", 13 * 11)
    stack = _random_stack(modes, size=(37, 33), seed=3)
    assert stack.preview_factor == 3
    ids = [layer.id for layer in stack]
    for layer_id, change in [
        (ids[0], {"opacity": 0.5}),
        (ids[0], {"opacity": 0.7}),
        (ids[1], {"offset": (-4, 5)}),
        (ids[1], {"offset": (7, -2)}),
        (ids[3], {"visible": False}),
    ]:
        stack.update(layer_id, **change)
        preview, factor = stack.composite_preview()
        exact = stack.composite_premultiplied()[::factor, ::factor]
        assert preview.shape == (11, 13, 4) and factor == 3
        # grouped normal layers round differently by at most one step in 255
        difference = np.abs(preview.astype(int) - exact.astype(int))
        assert difference.max() <= 1


def test_a_prepared_edit_previews_its_first_update_with_the_work_of_the_next(monkeypatch) -> None:
    """``prepare_edit`` (a press) builds the preview's caches off the calling thread; then the
    first update of the drag, like every later one, blends only the edited layer and the layers
    above it and premultiplies only the edited one, and draws what a fresh compositor draws."""
    monkeypatch.setattr(compositing, "PREVIEW_PIXELS", 16 * 16)
    work = CompositingWork(monkeypatch)
    modes = [BlendMode.MULTIPLY, BlendMode.OVERLAY, BlendMode.DARKEN]
    modes += [BlendMode.NORMAL, BlendMode.DIFFERENCE, BlendMode.SCREEN]
    rng = np.random.default_rng(11)
    stack = LayerStack(64, 64)
    for i, mode in enumerate(modes):
        pixels = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
        stack.add(Layer(pixels, name=f"l{i}", blend=mode, opacity=0.8))
    edited = stack[2].id
    stack.prepare_edit(edited).result()
    assert work.on_ui() == (0, 0), "the caches were built off the calling thread"
    assert work.blends["background"] >= len(modes)
    for opacity in (0.3, 0.5, 0.6):
        work.reset()
        stack.update(edited, opacity=opacity)
        preview, factor = stack.composite_preview()
        assert work.on_ui() == (4, 1), f"opacity {opacity}: layers 2 to 5 blended, 2 premultiplied"
    fresh = PreviewCompositor().composite_u8(stack.layers, stack.size, factor)
    assert factor == 4 and np.array_equal(preview, fresh)
    assert np.array_equal(
        stack.composite_premultiplied(), Compositor().composite_u8(stack.layers, stack.size)
    )


def test_a_small_canvas_previews_at_full_resolution() -> None:
    stack = _random_stack(list(BlendMode))
    preview, factor = stack.composite_preview()
    assert factor == 1 and np.array_equal(preview, stack.composite_premultiplied())


def test_only_the_changed_rectangle_is_recomputed() -> None:
    stack = LayerStack(64, 64)
    stack.add(Layer(_solid(64, 64, (10, 20, 30, 255))))
    small = Layer(_solid(8, 8, (200, 0, 0, 255)), offset=(10, 12))
    stack.add(small)
    stack.composite_premultiplied()
    stack.update(small.id, opacity=0.4)
    stack.composite_premultiplied()
    assert stack.last_dirty == (10, 12, 18, 20)
    stack.composite_premultiplied()
    assert stack.last_dirty is None  # nothing changed, nothing recomputed


def test_premultiplied_output_for_qimage_and_straight_for_export() -> None:
    stack = LayerStack(1, 1)
    stack.add(Layer(_solid(1, 1, (200, 100, 50, 128))))
    assert stack.composite_premultiplied()[0, 0].tolist() == [100, 50, 25, 128]
    assert stack.composite_rgba()[0, 0].tolist() == [200, 100, 50, 128]
    assert to_straight_u8(np.zeros((4, 1, 1), np.float32))[0, 0].tolist() == [0, 0, 0, 0]


# ---- undo commands ------------------------------------------------------------------


def test_every_layer_edit_is_one_undo_command(qtbot) -> None:
    from PySide6.QtGui import QUndoStack

    from studio.document import layer_commands as lc

    undo = QUndoStack()
    stack = LayerStack(8, 8)
    a = Layer(_solid(8, 8, (255, 0, 0, 255)), name="a")
    b = Layer(_solid(4, 4, (0, 0, 255, 255)), name="b")
    undo.push(lc.AddLayerCommand(stack, a))
    undo.push(lc.AddLayerCommand(stack, b))
    undo.push(lc.rename_layer(stack, b.id, "blue"))
    undo.push(lc.set_visible(stack, a.id, False))
    undo.push(lc.set_blend(stack, b.id, BlendMode.SCREEN))
    undo.push(lc.ReorderLayerCommand(stack, b.id, 0))
    dup = lc.DuplicateLayerCommand(stack, a.id)
    undo.push(dup)
    assert [layer.name for layer in stack] == ["blue", "a", "a copy"]
    undo.push(lc.RemoveLayerCommand(stack, a.id))
    assert [layer.name for layer in stack] == ["blue", "a copy"]
    assert undo.count() == 8
    undo.undo()  # delete
    assert [layer.name for layer in stack] == ["blue", "a", "a copy"] and stack[1] is stack.layer(
        a.id
    )
    undo.undo()  # duplicate
    undo.undo()  # reorder
    assert [layer.name for layer in stack] == ["a", "blue"]
    undo.undo()
    assert stack.layer(b.id).blend is BlendMode.NORMAL
    undo.undo()
    assert stack.layer(a.id).visible
    undo.undo()
    assert stack.layer(b.id).name == "b"
    undo.undo()
    undo.undo()
    assert len(stack) == 0
    for _ in range(8):
        undo.redo()
    assert [layer.name for layer in stack] == ["blue", "a copy"]


def test_opacity_and_position_drags_merge_into_one_command(qtbot) -> None:
    from PySide6.QtGui import QUndoStack

    from studio.document import layer_commands as lc

    undo = QUndoStack()
    stack = LayerStack(8, 8)
    layer = Layer(_solid(8, 8, (255, 0, 0, 255)))
    undo.push(lc.AddLayerCommand(stack, layer))
    drag = lc.new_gesture()
    for value in (0.9, 0.7, 0.4):
        undo.push(lc.set_opacity(stack, layer.id, value, drag))
    assert undo.count() == 2 and stack.layer(layer.id).opacity == 0.4
    move = lc.new_gesture()
    for offset in ((1, 0), (2, 1), (5, 3)):
        undo.push(lc.move_layer(stack, layer.id, offset, move))
    assert undo.count() == 3 and stack.layer(layer.id).offset == (5, 3)
    undo.undo()
    assert stack.layer(layer.id).offset == (0, 0)
    undo.undo()
    assert stack.layer(layer.id).opacity == 1.0
    undo.redo()
    assert stack.layer(layer.id).opacity == 0.4
    # a second drag is a second command, even on the same layer
    second = lc.new_gesture()
    undo.push(lc.set_opacity(stack, layer.id, 0.2, second))
    assert undo.count() == 3
    # commands without a gesture never merge
    undo.push(lc.set_opacity(stack, layer.id, 0.3))
    undo.push(lc.set_opacity(stack, layer.id, 0.5))
    assert undo.count() == 5
    # a drag that returns to where it started leaves nothing to undo
    back = lc.new_gesture()
    undo.push(lc.set_opacity(stack, layer.id, 0.1, back))
    undo.push(lc.set_opacity(stack, layer.id, 0.5, back))
    assert undo.count() == 5 and stack.layer(layer.id).opacity == 0.5
