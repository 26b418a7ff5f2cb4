"""Safe image import (issue 7, cases 5-7): every hostile input is built by the test itself."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.document import imageio
from studio.document.imageio import (
    MAX_IMPORT_PIXELS,
    PARAMETERS_KEY,
    RECIPE_KEY,
    ImageImportError,
    ImageMetadata,
    read_image,
    read_metadata,
    recipe_from_metadata,
)
from studio.engine.recipe import Recipe

SAMPLERS = ("Euler", "Euler a", "DDIM", "DPM++ 2M", "DPM++ 2M Karras", "UniPC")


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny file whose header claims a huge image: one small IDAT, as a decompression bomb would."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        imageio.PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _png_bytes(size=(32, 24), pnginfo: PngInfo | None = None) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
        buffer, "PNG", pnginfo=pnginfo
    )
    return buffer.getvalue()


def _with_text_chunks(png: bytes, *chunks: bytes) -> bytes:
    # insert right after IHDR, where A1111 and Pillow put text
    ihdr_end = len(imageio.PNG_SIGNATURE) + 8 + 13 + 4
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---- case 5: pixel caps -----------------------------------------------------------------


@pytest.mark.parametrize("side", [20000, 12000])
def test_huge_declared_size_is_rejected_before_decoding(tmp_path, monkeypatch, side) -> None:
    path = _write(tmp_path, f"bomb{side}.png", _png_declaring(side, side))
    assert path.stat().st_size < 200
    opened: list[str] = []
    monkeypatch.setattr(
        Image, "open", lambda *a, **k: opened.append("open") or pytest.fail("Pillow saw it")
    )
    with pytest.raises(ImageImportError, match=r"declares .*limit 64 megapixels"):
        read_image(path)
    assert opened == []


def test_decompression_bomb_warning_is_an_error_for_jpeg(tmp_path, monkeypatch) -> None:
    # JPEG headers are read by Pillow: lower Pillow's threshold so a small JPEG triggers its warning
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buffer, "JPEG")
    path = _write(tmp_path, "warn.jpg", buffer.getvalue())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # 10,000 px: warning, not Pillow's error
    with pytest.raises(ImageImportError, match="more pixels"):
        read_image(path)


def test_our_cap_applies_below_pillows_threshold(tmp_path) -> None:
    path = _write(tmp_path, "ok.png", _png_bytes((40, 30)))
    assert read_image(path).pixels.shape == (30, 40, 4)
    with pytest.raises(ImageImportError, match="40x30"):
        read_image(path, max_pixels=1000)
    assert MAX_IMPORT_PIXELS < Image.MAX_IMAGE_PIXELS


# ---- case 6: truncated files -----------------------------------------------------------


def test_truncated_png_is_an_import_error_not_a_grey_layer(tmp_path) -> None:
    data = _png_bytes((64, 64))
    for cut in (len(data) // 2, len(data) - 20, 40):
        path = _write(tmp_path, "cut.png", data[:cut])
        with pytest.raises(ImageImportError, match=r"truncated|corrupt") as info:
            read_image(path)
        assert "\n" not in str(info.value)


def test_truncated_jpeg_is_an_import_error(tmp_path) -> None:
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=95
    )
    data = buffer.getvalue()
    path = _write(tmp_path, "cut.jpg", data[: len(data) // 2])
    with pytest.raises(ImageImportError, match="truncated or corrupt"):
        read_image(path)


def test_not_an_image_and_missing_file(tmp_path) -> None:
    with pytest.raises(ImageImportError, match="not a PNG, JPEG or WebP"):
        read_image(_write(tmp_path, "x.png", b"<html><script>alert(1)</script></html>"))
    with pytest.raises(ImageImportError, match="could not be read"):
        read_image(tmp_path / "missing.png")


def test_valid_images_decode_to_rgba(tmp_path) -> None:
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 100
    for suffix, fmt in ((".png", "PNG"), (".webp", "WEBP")):
        path = tmp_path / f"a{suffix}"
        Image.fromarray(rgba).save(path, fmt, lossless=True)
        imported = read_image(path)
        assert imported.format == fmt
        np.testing.assert_array_equal(imported.pixels, rgba)


# ---- case 7: hostile metadata -----------------------------------------------------------


def test_compressed_text_over_one_megabyte_is_dropped_with_a_warning(tmp_path) -> None:
    raw = np.random.default_rng(2).bytes(1_200_000)  # incompressible: > 1 MB compressed
    ztxt = _chunk(b"zTXt", b"parameters\0\0" + zlib.compress(raw))
    path = _write(tmp_path, "z.png", _with_text_chunks(_png_bytes(), ztxt))
    imported = read_image(path)  # the image itself still imports
    assert imported.pixels.shape == (24, 32, 4)
    assert imported.metadata.parameters is None
    assert any("larger than 1 MB" in w for w in imported.metadata.warnings)


def test_zip_bomb_text_is_capped_while_inflating(tmp_path) -> None:
    bomb = zlib.compress(b"a" * 50_000_000, 9)  # ~50 KB compressed, 50 MB inflated
    itxt = _chunk(b"iTXt", b"parameters\0\x01\0\0\0" + bomb)
    meta = read_metadata(_write(tmp_path, "b.png", _with_text_chunks(_png_bytes(), itxt)))
    assert meta.parameters is None
    assert any("uncompressed" in w for w in meta.warnings)


def test_five_megabyte_prompt_is_capped(tmp_path) -> None:
    text = (
        "a cat, " * (5_000_000 // 7)
        + "\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64"
    )
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, text, zip=True)
    path = _write(tmp_path, "p.png", _png_bytes(pnginfo=info))
    meta = read_metadata(path)
    assert meta.parameters is None and meta.warnings
    result = recipe_from_metadata(meta, SAMPLERS)
    assert result.recipe is None and result.warnings
    # the same prompt as plain, uncompressed tEXt is capped too
    big = _chunk(b"tEXt", b"parameters\0" + text.encode("latin-1"))
    meta = read_metadata(_write(tmp_path, "q.png", _with_text_chunks(_png_bytes(), big)))
    assert meta.parameters is None


def test_invalid_json_recipe_falls_back_to_parameters(tmp_path) -> None:
    recipe = Recipe(prompt="a red fox", seed=5, sampler="Euler")
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, recipe.to_parameters())
    info.add_itxt(RECIPE_KEY, '{"prompt": "a red fox", "seed": ')
    result = recipe_from_metadata(
        read_metadata(_write(tmp_path, "j.png", _png_bytes(pnginfo=info))), SAMPLERS
    )
    assert result.source == "parameters"
    assert result.recipe == recipe
    assert any("unreadable" in w for w in result.warnings)
    deep = ImageMetadata(
        {RECIPE_KEY: "[" * 100_000}
    )  # nesting deep enough to break a recursive parser
    assert recipe_from_metadata(deep, SAMPLERS).recipe is None


def test_unknown_sampler_and_missing_model_fall_back_with_warnings(tmp_path) -> None:
    text = (
        "castle\nSteps: 12, Sampler: Quantum Foam 9000, CFG scale: 5, Seed: 3, Size: 64x64, "
        f"Model: {tmp_path / 'gone' / 'model.safetensors'}"
    )
    result = recipe_from_metadata(ImageMetadata({PARAMETERS_KEY: text}), SAMPLERS)
    assert result.recipe is not None
    assert result.recipe.sampler == "Euler a"
    assert result.recipe.model == "bundled"
    assert result.recipe.steps == 12 and result.recipe.seed == 3
    assert len(result.warnings) == 2
    assert "Quantum Foam 9000" in result.warnings[0] and "not found" in result.warnings[1]
    present = tmp_path / "here.safetensors"
    present.write_bytes(b"x")
    kept = recipe_from_metadata(
        ImageMetadata(
            {
                PARAMETERS_KEY: text.replace(
                    str(tmp_path / "gone" / "model.safetensors"), str(present)
                )
            }
        ),
        SAMPLERS,
    )
    assert kept.recipe.model == str(present)


def test_html_and_script_text_stays_plain_data(tmp_path) -> None:
    prompt = '<img src=x onerror="alert(1)"><script>__import__("os").system("touch pwned")</script>'
    recipe = Recipe(prompt=prompt, negative_prompt="${jndi:ldap://x}", sampler="DDIM")
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, recipe.to_parameters())
    info.add_itxt(RECIPE_KEY, recipe.to_json())
    info.add_text("Comment", "{{7*7}} <b>bold</b>")
    meta = read_metadata(_write(tmp_path, "h.png", _png_bytes(pnginfo=info)))
    assert meta.texts["Comment"] == "{{7*7}} <b>bold</b>"
    result = recipe_from_metadata(meta, SAMPLERS)
    assert result.recipe == recipe and result.source == "json"
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_many_text_chunks_are_capped(tmp_path) -> None:
    chunks = [_chunk(b"tEXt", f"k{i}\0v".encode()) for i in range(200)]
    meta = read_metadata(_write(tmp_path, "many.png", _with_text_chunks(_png_bytes(), *chunks)))
    assert len(meta.texts) == imageio.MAX_TEXT_CHUNKS
    assert meta.warnings


def test_read_layer_makes_a_layer_named_after_the_file(tmp_path) -> None:
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, Recipe(prompt="fox").to_parameters())
    path = _write(tmp_path, "fox photo.png", _png_bytes((10, 6), pnginfo=info))
    layer, meta = imageio.read_layer(path)
    assert layer.name == "fox photo" and layer.pixels.shape == (6, 10, 4) and layer.offset == (0, 0)
    assert recipe_from_metadata(meta, SAMPLERS).recipe.prompt == "fox"


def test_info_cuts_a_one_megabyte_one_word_prompt_with_a_note(tmp_path, capsys) -> None:
    from studio.cli import info_main
    from studio.engine.recipe import MAX_PROMPT_CHARS

    info = PngInfo()
    info.add_itxt(RECIPE_KEY, Recipe("z" * 1_000_000, seed=3).to_json())
    path = _write(tmp_path, "long.png", _png_bytes(pnginfo=info))
    assert info_main([str(path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["recipe"]["prompt"]) == MAX_PROMPT_CHARS
    assert any("1,000,000" in w for w in printed["warnings"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
@pytest.mark.parametrize("reader", [imageio.read_layer, imageio.read_metadata])
def test_a_fifo_named_like_an_image_is_refused_without_waiting(tmp_path, reader) -> None:
    import threading

    fifo = tmp_path / "picture.png"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            reader(fifo)
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # opening the FIFO waits for a writer: be one, so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail("reading a FIFO waited for a writer")
    (error,) = outcome
    assert isinstance(error, ImageImportError) and "not a regular file" in str(error)
