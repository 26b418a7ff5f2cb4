"""Export: images with metadata read back by independent parsers, layered files, trajectories."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from studio.document import export
from studio.document.compositing import BlendMode
from studio.document.export import (
    ExportError,
    contact_sheet,
    export_animation,
    export_contact_sheet,
    export_image,
    export_ora,
    export_psd,
    frames_from_steps,
    mp4_available,
    psd_available,
)
from studio.document.imageio import (
    PARAMETERS_KEY,
    RECIPE_KEY,
    read_image,
    read_metadata,
    recipe_from_metadata,
)
from studio.document.layers import Layer, LayerStack
from studio.engine.recipe import Recipe

SAMPLERS = (
    "Euler",
    "Euler a",
    "DDIM",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "UniPC",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Karras",
)

RECIPE = Recipe(
    prompt="a lighthouse, at dusk: misty\nsecond line «ünïcode»",
    negative_prompt="blurry, low quality",
    seed=2**40 + 7,
    steps=12,
    guidance=6.5,
    sampler="DPM++ 2M Karras",
    width=64,
    height=48,
    variation_seed=99,
    variation_strength=0.25,
)


def _pixels(w=64, h=48, alpha=False) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, 4 if alpha else 3), dtype=np.uint8)


# ---- images -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_round_trip_export_import_gives_identical_recipe(tmp_path, suffix) -> None:
    path = export_image(_pixels(), tmp_path / f"out{suffix}", RECIPE)
    meta = read_metadata(path)
    assert meta.parameters == RECIPE.to_parameters()
    result = recipe_from_metadata(meta, SAMPLERS)
    assert result.source == "json" and result.warnings == ()
    assert result.recipe == RECIPE
    # the A1111 text alone also gives the recipe back
    assert Recipe.from_parameters(meta.parameters) == RECIPE
    assert read_image(path).pixels.shape == (48, 64, 4)


def test_png_pixels_are_lossless_with_alpha(tmp_path) -> None:
    pixels = _pixels(alpha=True)
    path = export_image(pixels, tmp_path / "a.png", RECIPE)
    np.testing.assert_array_equal(read_image(path).pixels, pixels)
    with Image.open(path) as image:
        assert image.text[PARAMETERS_KEY] == RECIPE.to_parameters()
        assert Recipe.from_json(image.text[RECIPE_KEY]) == RECIPE


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_independent_parser_sd_parsers_reads_our_metadata(tmp_path, suffix) -> None:
    sd_parsers = pytest.importorskip("sd_parsers")
    path = export_image(_pixels(), tmp_path / f"x{suffix}", RECIPE)
    info = sd_parsers.ParserManager().parse(str(path))
    assert info is not None
    assert info.generator == sd_parsers.data.Generators.AUTOMATIC1111
    assert [p.value for p in info.prompts] == [RECIPE.prompt]
    assert [p.value for p in info.negative_prompts] == [RECIPE.negative_prompt]
    (sampler,) = info.samplers
    assert sampler.name == "DPM++ 2M"
    assert sampler.parameters["scheduler"] == "Karras"
    assert sampler.parameters["seed"] == str(RECIPE.seed)
    assert sampler.parameters["steps"] == "12"
    assert float(sampler.parameters["cfg_scale"]) == 6.5
    assert sampler.model.name == "bundled"
    assert info.metadata["Size"] == "64x48"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_strip_metadata_writes_none(tmp_path, suffix) -> None:
    path = export_image(_pixels(), tmp_path / f"s{suffix}", RECIPE, strip_metadata=True)
    assert read_metadata(path).texts == {}
    with Image.open(path) as image:
        assert not image.info.get("exif") and not getattr(image, "text", {})
    assert RECIPE.prompt.encode("utf-16-be") not in path.read_bytes()
    assert b"lighthouse" not in path.read_bytes()


def test_jpeg_flattens_alpha_onto_white(tmp_path) -> None:
    pixels = np.zeros((8, 8, 4), np.uint8)
    path = export_image(pixels, tmp_path / "t.jpg")
    assert read_image(path).pixels[..., :3].min() > 245


def test_failed_export_leaves_the_existing_file_untouched(tmp_path, monkeypatch) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"precious")

    def boom(self, *args, **kwargs):
        with open(args[0], "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(ExportError, match="disk full"):
        export_image(_pixels(), target, RECIPE)
    assert target.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]  # no temporary left behind


def test_replace_is_atomic_and_overwrites(tmp_path, monkeypatch) -> None:
    target = tmp_path / "x.png"
    target.write_bytes(b"old")
    calls = []
    real_replace = os.replace
    monkeypatch.setattr(
        export.os,
        "replace",
        lambda a, b: calls.append((Path(a).parent, Path(b))) or real_replace(a, b),
    )
    export_image(_pixels(), target, RECIPE)
    assert calls == [(tmp_path, target)]  # written beside the target, then renamed over it
    assert target.read_bytes().startswith(b"\x89PNG")


def test_bad_suffix_and_bad_pixels(tmp_path) -> None:
    with pytest.raises(ExportError, match=r"\.bmp"):
        export_image(_pixels(), tmp_path / "x.bmp")
    with pytest.raises(ExportError, match="uint8"):
        export_image(np.zeros((4, 4, 3), np.float32), tmp_path / "x.png")


# ---- layered files ---------------------------------------------------------------------


def _stack() -> LayerStack:
    stack = LayerStack(40, 30)
    bg = np.zeros((30, 40, 4), np.uint8)
    bg[..., 2] = 200
    bg[..., 3] = 255
    stack.add(Layer(bg, name="Background"))
    red = np.zeros((10, 12, 4), np.uint8)
    red[..., 0] = 255
    red[..., 3] = 255
    stack.add(
        Layer(red, name="Red — ünïcode", opacity=0.5, offset=(5, 7), blend=BlendMode.MULTIPLY)
    )
    stack.add(Layer(red, name="Hidden", visible=False, offset=(-3, 20), blend=BlendMode.SCREEN))
    return stack


def test_ora_follows_the_spec(tmp_path) -> None:
    """An independent check of the OpenRaster spec with zipfile and ElementTree."""
    path = export_ora(_stack(), tmp_path / "layers.ora")
    raw = path.read_bytes()
    assert (
        raw[30:38] == b"mimetype" and raw[38:54] == b"image/openraster"
    )  # first entry, at a fixed offset
    with zipfile.ZipFile(path) as archive:
        first = archive.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert archive.read("mimetype") == b"image/openraster"
        names = set(archive.namelist())
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= names
        root = ET.fromstring(archive.read("stack.xml"))
        assert root.tag == "image" and root.get("w") == "40" and root.get("h") == "30"
        layers = root.find("stack").findall("layer")
        assert [layer.get("name") for layer in layers] == [
            "Hidden",
            "Red — ünïcode",
            "Background",
        ]  # top first
        hidden, red, bg = layers
        assert hidden.get("visibility") == "hidden" and hidden.get("composite-op") == "svg:screen"
        assert (hidden.get("x"), hidden.get("y")) == ("-3", "20")
        assert float(red.get("opacity")) == 0.5 and red.get("composite-op") == "svg:multiply"
        assert (red.get("x"), red.get("y")) == ("5", "7")
        assert bg.get("visibility") == "visible" and bg.get("composite-op") == "svg:src-over"
        for layer in layers:
            assert layer.get("src") in names
        with Image.open(archive.open(red.get("src"))) as image:
            assert image.size == (12, 10)
        with Image.open(archive.open("Thumbnails/thumbnail.png")) as thumb:
            assert max(thumb.size) <= 256
        with Image.open(archive.open("mergedimage.png")) as merged:
            np.testing.assert_array_equal(
                np.asarray(merged.convert("RGBA")), _stack().composite_rgba()
            )


def test_ora_reopens_in_pyora(tmp_path) -> None:
    pyora = pytest.importorskip("pyora")
    path = export_ora(_stack(), tmp_path / "layers.ora")
    project = pyora.Project.load(str(path))
    layers = list(project.iter_layers)
    assert len(layers) == 3
    by_name = {layer.name: layer for layer in layers}
    assert set(by_name) == {"Background", "Red — ünïcode", "Hidden"}
    assert by_name["Hidden"].visible is False and by_name["Background"].visible is True
    assert by_name["Red — ünïcode"].opacity == pytest.approx(0.5)
    assert by_name["Red — ünïcode"].offsets == (5, 7)
    assert by_name["Red — ünïcode"].composite_op == "svg:multiply"
    assert project.dimensions == (40, 30)


def test_psd_keeps_layer_properties(tmp_path) -> None:
    if not psd_available():
        pytest.skip("psd-tools is not installed")
    from psd_tools import PSDImage

    path = export_psd(_stack(), tmp_path / "layers.psd")
    psd = PSDImage.open(path)
    layers = list(psd)
    assert [layer.name for layer in layers] == [
        "Background",
        "Red — ünïcode",
        "Hidden",
    ]  # bottom first
    assert layers[1].opacity == 128 and (layers[1].left, layers[1].top) == (5, 7)
    assert layers[1].blend_mode.name == "MULTIPLY"
    assert layers[2].visible is False and layers[2].blend_mode.name == "SCREEN"
    assert psd.size == (40, 30)


def test_layered_export_of_an_empty_stack_is_refused(tmp_path) -> None:
    with pytest.raises(ExportError, match="no layers"):
        export_ora(LayerStack(), tmp_path / "e.ora")


# ---- trajectories -------------------------------------------------------------------------


def _steps(n=6, side=8):
    steps = []
    for i in range(n):
        level = int(255 * i / (n - 1))
        x0 = np.full((side, side, 3), level, np.uint8)
        xt = np.full((side, side, 3), 255 - level, np.uint8)
        steps.append(SimpleNamespace(index=i, total=n, preview_x0=x0, preview_xt=xt))
    return steps


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
@pytest.mark.parametrize("view", ["x0", "xt"])
def test_animation_frames_and_durations(tmp_path, suffix, view) -> None:
    steps = _steps()
    path = export_animation(
        frames_from_steps(steps, view), tmp_path / f"run{suffix}", frame_ms=80, hold_last_ms=400
    )
    with Image.open(path) as image:
        assert image.n_frames == len(steps)
        assert image.size == (512, 512)  # 8 px previews enlarged by a whole factor
        durations, levels = [], []
        for i in range(image.n_frames):
            image.seek(i)
            image.load()  # WebP reports a frame's duration once it is decoded
            durations.append(image.info["duration"])
            levels.append(int(np.asarray(image.convert("RGB"))[256, 256, 0]))
    assert durations == [80] * 5 + [400]
    expected = [int(getattr(s, f"preview_{view}")[0, 0, 0]) for s in steps]
    assert np.allclose(levels, expected, atol=3)


def test_mp4_when_the_codec_is_available(tmp_path) -> None:
    if not mp4_available():
        pytest.skip("imageio-ffmpeg is not installed")
    import imageio_ffmpeg

    path = export_animation(
        frames_from_steps(_steps(side=7)), tmp_path / "run.mp4", frame_ms=100, hold_last_ms=100
    )
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = list(reader)
    assert meta["size"] == (512, 512)  # 7 px previews x 73 = 511, padded to an even side
    assert len(frames) == 6


def test_animation_refuses_bad_input(tmp_path) -> None:
    with pytest.raises(ExportError, match="no steps"):
        export_animation([], tmp_path / "a.gif")
    with pytest.raises(ExportError, match=r"\.avi"):
        export_animation(frames_from_steps(_steps()), tmp_path / "a.avi")
    with pytest.raises(ExportError, match="view"):
        frames_from_steps(_steps(), "latent")


def test_contact_sheet_labels_and_layout(tmp_path) -> None:
    steps = _steps(8)
    selected = [(s.index, s.preview_x0) for s in steps[::2]]  # steps 1, 3, 5, 7 of 8
    sheet = contact_sheet(selected, total=8, columns=2, cell=64, padding=4)
    label_h = 14
    assert sheet.shape == (4 + 2 * (64 + label_h + 4), 4 + 2 * (64 + 4), 3)
    # the cells show the selected frames in order
    assert sheet[4 + 32, 4 + 32, 0] == selected[0][1][0, 0, 0]
    assert sheet[4 + 32, 4 + 68 + 32, 0] == selected[1][1][0, 0, 0]
    # labels are drawn below each cell (light text on the dark background)
    label_band = sheet[4 + 64 : 4 + 64 + label_h, 4 : 4 + 64]
    assert label_band.max() > 150
    path = export_contact_sheet(
        selected, 8, tmp_path / "sheet.png", RECIPE, columns=2, cell=64, padding=4
    )
    assert recipe_from_metadata(read_metadata(path), SAMPLERS).recipe == RECIPE


def test_contact_sheet_label_text_matches_a_rendered_reference() -> None:
    """The label is exactly "step k / N": compare against Pillow rendering that string."""
    from PIL import ImageDraw, ImageFont

    frame = np.zeros((64, 64, 3), np.uint8)
    sheet = contact_sheet([(4, frame)], total=20, columns=1, cell=64, padding=4)
    reference = Image.new("RGB", (sheet.shape[1], sheet.shape[0]), (24, 24, 28))
    ImageDraw.Draw(reference).text(
        (4, 4 + 64 + 2), "step 5 / 20", fill=(230, 230, 230), font=ImageFont.load_default(size=10)
    )
    np.testing.assert_array_equal(sheet[68:], np.asarray(reference)[68:])


def test_contact_sheet_title_names_the_version_prompt_seed_and_sampler() -> None:
    from PIL import ImageDraw, ImageFont

    title = export.contact_sheet_title(RECIPE, "v3", "garden")
    assert (
        title[0] == "garden · v3"
        and title[1] == "“a lighthouse, at dusk: misty second line «ünïcode»”"
    )
    assert f"seed {RECIPE.seed}" in title[2] and RECIPE.sampler in title[2]
    frame = np.zeros((64, 64, 3), np.uint8)
    plain = contact_sheet([(0, frame)], total=4, columns=1, cell=64, padding=4)
    titled = contact_sheet([(0, frame)], total=4, columns=1, cell=64, padding=4, title=title)
    assert titled.shape[0] == plain.shape[0] + 3 * 14
    # the grid moves down by the title block, unchanged
    np.testing.assert_array_equal(titled[3 * 14 :], plain)
    reference = Image.new("RGB", (plain.shape[1], 14), (24, 24, 28))
    font = ImageFont.load_default(size=10)
    draw = ImageDraw.Draw(reference)
    fitted = export._fit(draw, title[0], font, plain.shape[1] - 8)
    draw.text((4, 0), fitted, fill=(230, 230, 230), font=font)
    np.testing.assert_array_equal(titled[4 : 4 + 14], np.asarray(reference))


def test_animated_webp_is_lossless_so_the_last_frame_is_exact(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    path = export_animation(frames, tmp_path / "run.webp", max_side=None)
    with Image.open(path) as animation:
        animation.seek(animation.n_frames - 1)
        np.testing.assert_array_equal(np.asarray(animation.convert("RGB")), frames[-1])
