"""File > Export from the window: images with their recipe, layers as OpenRaster/PSD, trajectories."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
from PIL import Image

from studio.document import export
from studio.document.imageio import read_image, read_metadata, recipe_from_metadata
from studio.engine.schedulers import SAMPLERS
from studio.ui.export_actions import ImageSource
from studio.ui.project_menu import file_menu
from tests.ui.conftest import generate_and_wait
from tests.ui.test_project_flow import Answers, attach_session


@pytest.fixture
def errors(window, monkeypatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(window.exports, "show_error", shown.append)
    return shown


@pytest.fixture
def two_layers(qtbot, window):
    """Two versions on the canvas, the top one at half opacity and moved."""
    from studio.document.layer_commands import UpdateLayerCommand

    first = generate_and_wait(qtbot, window)
    window.workspace.add_version_to_canvas()
    window.panel.seed.setText("4321")
    second = generate_and_wait(qtbot, window)
    top = window.workspace.add_version_to_canvas()
    window.session.undo_stack.push(
        UpdateLayerCommand(window.workspace.layers, top.id, {"opacity": 0.5, "offset": (3, 2)})
    )
    return first, second


def test_the_export_submenu_lists_every_export(window):
    (export_menu,) = [a.menu() for a in file_menu(window).actions() if a.text() == "Export"]
    names = [a.text() for a in export_menu.actions() if a.text()]
    assert names[:2] == ["Image…", "Layers as OpenRaster…"]
    assert names[-2:] == ["Trajectory as animation…", "Contact sheet…"]
    assert ("Layers as PSD…" in names) == export.psd_available()


def test_export_the_current_version_with_its_recipe_and_without(qtbot, window, tmp_path, errors):
    version = generate_and_wait(qtbot, window)
    path = window.exports.export_image(tmp_path / "v1.png", ImageSource.VERSION)
    assert path is not None and errors == []
    imported = read_image(path)
    assert np.array_equal(imported.pixels[..., :3], window.session.tree.result(version.id))
    read_back = recipe_from_metadata(imported.metadata, SAMPLERS).recipe
    # The file names the model, never its local path (which stays in the project), so a
    # model found only by path on this machine reads back as the bundled one, with a note.
    assert read_back.with_changes(model=version.recipe.model) == version.recipe
    assert not any(version.recipe.model in text for text in imported.metadata.texts.values())

    stripped = window.exports.export_image(
        tmp_path / "v1.webp", ImageSource.VERSION, strip_metadata=True
    )
    assert read_metadata(stripped).texts == {}
    with Image.open(stripped) as image:
        assert image.size == (32, 32)


def test_export_the_composite_and_the_selected_layer(window, two_layers, tmp_path, errors):
    _first, second = two_layers
    composite = window.exports.export_image(tmp_path / "canvas.png", ImageSource.COMPOSITE)
    pixels = read_image(composite).pixels
    assert np.array_equal(pixels, window.workspace.layers.composite_rgba())
    assert read_metadata(composite).texts == {}, "layers from two versions: no single recipe"

    layer_file = window.exports.export_image(tmp_path / "layer.jpg", ImageSource.LAYER)
    found = recipe_from_metadata(read_metadata(layer_file), SAMPLERS)
    assert found.recipe.with_changes(model=second.recipe.model) == second.recipe, (
        "the selected (top) layer carries its version's recipe (the model by name only)"
    )
    assert errors == []


def test_layers_export_as_openraster_that_reopens(window, two_layers, tmp_path):
    path = window.exports.export_ora(tmp_path / "canvas.ora")
    with zipfile.ZipFile(path) as archive:
        assert archive.read("mimetype") == b"image/openraster"
        stack = ET.fromstring(archive.read("stack.xml"))
        layers = stack.findall(".//layer")
        assert [layer.get("name") for layer in layers] == ["v2", "v1"]  # top first
        assert float(layers[0].get("opacity")) == pytest.approx(0.5)
        assert (layers[0].get("x"), layers[0].get("y")) == ("3", "2")
        with archive.open(layers[1].get("src")) as png:
            assert Image.open(png).size == (32, 32)


@pytest.mark.skipif(not export.psd_available(), reason="no PSD writer installed")
def test_layers_export_as_psd(window, two_layers, tmp_path):
    path = window.exports.export_psd(tmp_path / "canvas.psd")
    assert path is not None and path.read_bytes()[:4] == b"8BPS"


def full_decodes(model, steps, view: str) -> list[np.ndarray]:
    """What the worker's full decode gives for each step (x0-hat, or x_t at unit variance)."""
    from studio.engine.checkpoint import Checkpoint
    from studio.engine.preview import decode

    images = []
    for step in steps:
        checkpoint = Checkpoint.from_bytes(step.checkpoint)
        if view == "x0":
            latent = checkpoint.x0_pred
        else:
            latent = checkpoint.latent / (1 + step.sigma**2) ** 0.5
        images.append(decode(model.vae, latent))
    return images


def animation_frames(path) -> list[np.ndarray]:
    with Image.open(path) as animation:
        frames = []
        for i in range(animation.n_frames):
            animation.seek(i)
            frames.append(np.asarray(animation.convert("RGB")))
    return frames


def test_trajectory_animation_is_built_from_full_decodes_and_ends_on_the_exported_image(
    qtbot, window, tiny_model, tmp_path
):
    version = generate_and_wait(qtbot, window)
    steps = steps_of(window, version)
    path = window.exports.export_animation(tmp_path / "run.webp", view="x0", frame_ms=80)
    frames = animation_frames(path)
    assert len(frames) == len(version.step_indices) == 6
    with Image.open(path) as animation:
        animation.load()  # WebP reports a frame's duration once it is decoded
        assert animation.info["duration"] == 80
    factor = frames[0].shape[0] // 32
    assert factor > 1 and frames[0].shape == (32 * factor, 32 * factor, 3)
    small = [frame[::factor, ::factor] for frame in frames]
    # Lossless WebP enlarged by whole pixels: every frame is a full decode at image size,
    # not the 16x16 stored preview, and the last frame is the exported PNG exactly.
    expected = full_decodes(tiny_model, steps, "x0")
    assert all(np.array_equal(a, b) for a, b in zip(small[:-1], expected[:-1], strict=True))
    png = window.exports.export_image(tmp_path / "final.png", ImageSource.VERSION)
    assert np.array_equal(small[-1], read_image(png).pixels[..., :3])
    assert steps[0].preview_x0.shape == (16, 16, 3)  # the tiny model has no preview decoder


def test_static_view_animation_decodes_x_t(qtbot, window, tiny_model, tmp_path):
    version = generate_and_wait(qtbot, window)
    frames = animation_frames(window.exports.export_animation(tmp_path / "run.gif", view="xt"))
    assert len(frames) == 6
    factor = frames[0].shape[0] // 32
    expected = full_decodes(tiny_model, steps_of(window, version), "xt")
    means = [frame[::factor, ::factor].astype(np.float32).mean() for frame in frames]
    # GIF is palette-limited, so compare each frame's level with its full decode.
    assert np.allclose(means, [e.astype(np.float32).mean() for e in expected], atol=4)


def test_cancelling_the_decodes_writes_nothing(qtbot, window, tmp_path, errors, monkeypatch):
    from studio.ui.trajectory_frames import TrajectoryFrames

    generate_and_wait(qtbot, window)
    original = TrajectoryFrames.start

    def start_then_cancel(job):
        original(job)
        job.cancel()

    monkeypatch.setattr(TrajectoryFrames, "start", start_then_cancel)
    assert window.exports.export_animation(tmp_path / "run.webp") is None
    assert errors == ["The export was cancelled."] and not (tmp_path / "run.webp").exists()


def test_exports_and_a_saved_project_get_the_mode_the_umask_gives(qtbot, window, tmp_path, errors):
    session = attach_session(window, tmp_path / "recovery", Answers())
    session.start()
    generate_and_wait(qtbot, window)
    window.workspace.add_version_to_canvas()
    previous = os.umask(0o022)
    try:
        written = [
            window.exports.export_image(tmp_path / "v1.png", ImageSource.VERSION, scale=2),
            window.exports.export_ora(tmp_path / "canvas.ora"),
            window.exports.export_contact_sheet(tmp_path / "sheet.png", count=2),
        ]
        assert session.save_as(tmp_path / "kept.studio")
    finally:
        os.umask(previous)
    assert errors == [] and None not in written
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [*written, tmp_path / "kept.studio"]}
    assert modes == dict.fromkeys(modes, 0o644), "as any program writes them: not private 0600"


def steps_of(window, version):
    return [window.session.tree.step(version.id, i) for i in version.step_indices]


def test_contact_sheet_of_the_current_version(qtbot, window, tmp_path):
    version = generate_and_wait(qtbot, window)
    path = window.exports.export_contact_sheet(tmp_path / "sheet.png", count=4)
    found = recipe_from_metadata(read_metadata(path), SAMPLERS)
    assert found.recipe.with_changes(model=version.recipe.model) == version.recipe
    untitled = export.contact_sheet([(i, np.zeros((32, 32, 3), np.uint8)) for i in range(4)], 6)
    with Image.open(path) as sheet:
        assert sheet.width > sheet.height  # one row of four cells
        # the title block (version, prompt, seed and sampler) sits above the row
        assert sheet.height > untitled.shape[0] and sheet.width == untitled.shape[1]
        top = np.asarray(sheet.convert("RGB"))[: sheet.height - untitled.shape[0] + 8]
        assert (top > 150).any()


def test_export_errors_are_one_sentence_and_write_nothing(window, tmp_path, errors):
    assert window.exports.export_ora(tmp_path / "empty.ora") is None
    assert window.exports.export_image(tmp_path / "none.png", ImageSource.VERSION) is None
    assert window.exports.export_animation(tmp_path / "none.webp") is None
    assert window.exports.export_image(tmp_path / "x.bmp", ImageSource.COMPOSITE) is None
    assert len(errors) == 4 and all(e.endswith(".") and "\n" not in e for e in errors)
    assert list(tmp_path.glob("*.ora")) == list(tmp_path.glob("none.*")) == []


@pytest.mark.skipif(not export.mp4_available(), reason="no MP4 codec installed")
def test_trajectory_exports_as_mp4_when_a_codec_is_available(qtbot, window, tmp_path):
    import imageio_ffmpeg

    version = generate_and_wait(qtbot, window)
    path = window.exports.export_animation(tmp_path / "run.mp4", frame_ms=100)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = list(reader)
    assert meta["fps"] == pytest.approx(10)
    assert len(frames) >= len(version.step_indices)  # the last step is held for a second
