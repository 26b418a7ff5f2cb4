"""The one image-metadata format: Qt- and torch-free, written in one place, round-tripping exactly."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio import formats
from studio.engine.recipe import MAX_PROMPT_CHARS, Recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPE = Recipe(
    "a purple balloon, über the desert",
    negative_prompt="blurry",
    seed=2**63 + 5,
    guidance=6.123456789,
    sampler="DPM++ 2M Karras",
)


def test_importing_the_format_loads_neither_qt_nor_torch():
    code = (
        "import sys, studio.formats, studio.document.imageio\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'torch')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_metadata_keys_are_written_down_only_in_formats():
    keys = (formats.RECIPE_KEY, *formats.LEGACY_RECIPE_KEYS)
    holders = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "studio").rglob("*.py")
        if any(key in path.read_text(encoding="utf-8") for key in keys)
    )
    assert holders == ["studio/formats.py"]


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_exif_round_trip_keeps_the_exact_recipe(fmt):
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(
        buffer, fmt, exif=formats.exif_bytes(RECIPE, model_hash="abc123")
    )
    metadata = formats.exif_metadata(buffer.getvalue())
    assert metadata.parameters == RECIPE.to_parameters(model_hash="abc123")
    found = formats.recipe_from_metadata(metadata, ("DPM++ 2M Karras",))
    assert found.source == "json" and found.recipe == RECIPE and found.warnings == ()


def test_png_round_trip_through_the_chunk_walker():
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(
        buffer, "PNG", pnginfo=formats.png_info(RECIPE)
    )
    walk = formats.walk_png(buffer.getvalue())
    assert walk.problem is None and walk.size == (8, 8)
    assert walk.texts == formats.metadata_texts(RECIPE)
    assert b"noise-studio-recipe" not in walk.stripped  # Pillow decodes the file without its texts


def test_the_canonical_key_wins_over_the_old_one():
    newer, older = RECIPE.with_changes(seed=1), RECIPE.with_changes(seed=2)
    metadata = formats.ImageMetadata(
        {formats.LEGACY_RECIPE_KEYS[0]: older.to_json(), formats.RECIPE_KEY: newer.to_json()}
    )
    assert Recipe.from_json(metadata.recipe_json) == newer


def _jpeg_with_user_comment(comment: bytes) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(formats.ExifTags.IFD.Exif)[formats.ExifTags.Base.UserComment] = comment
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_utf16_user_comment_without_a_byte_order_mark_is_read_in_its_order(codec):
    text = "a fox über the snow\nSteps: 12, Sampler: Euler a, CFG scale: 6, Seed: 5"
    data = _jpeg_with_user_comment(formats.EXIF_UNICODE_PREFIX + text.encode(codec))
    assert formats.exif_metadata(data).parameters == text


def test_our_json_recipe_wins_over_a_prompt_that_looks_like_parameters():
    recipe = Recipe("style: oil, mood: calm, light: soft", seed=4)
    metadata = formats.ImageMetadata(formats.metadata_texts(recipe))
    found = formats.recipe_from_metadata(metadata, ("Euler a",))
    assert found.source == "json" and found.recipe == recipe
    only_text = formats.ImageMetadata({formats.PARAMETERS_KEY: recipe.prompt})
    assert formats.recipe_from_metadata(only_text, ("Euler a",)).recipe.prompt == recipe.prompt


def test_a_one_megabyte_prompt_in_image_metadata_is_cut_with_a_warning():
    metadata = formats.ImageMetadata({formats.RECIPE_KEY: Recipe("w" * 1_000_000).to_json()})
    found = formats.recipe_from_metadata(metadata, ("Euler a",))
    assert len(found.recipe.prompt) == MAX_PROMPT_CHARS
    assert any("1,000,000" in w for w in found.warnings)
