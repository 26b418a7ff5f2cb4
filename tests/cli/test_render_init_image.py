"""``render --init-image FILE --strength S [--mask FILE]``: the engine's image-to-image path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from studio.cli import main
from studio.engine import img2img
from studio.engine.recipe import Recipe
from studio.formats import RECIPE_KEY


def render(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def picture(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    path = tmp_path / "init.png"
    Image.fromarray(pixels).save(path)
    mask = np.zeros((24, 32), np.uint8)
    mask[6:18, 16:] = 255
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).convert("RGB").save(mask_path)
    return pixels, path, mask, mask_path


def _common(model_dir) -> list[str]:
    return ["--model", str(model_dir), "--prompt", "a red car", "--seed", "4", "--steps", "6"]


def test_init_image_runs_from_the_strengths_step_and_records_the_hash(
    capsys, tiny_model_dir, tmp_path, picture
):
    pixels, path, _, _ = picture
    out = tmp_path / "out.png"
    summary = render(
        capsys,
        *_common(tiny_model_dir),
        "--init-image",
        str(path),
        "--strength",
        "0.5",
        "--out",
        str(out),
    )
    assert summary["steps_run"] == 3 and (summary["width"], summary["height"]) == (32, 24)
    assert summary["recipe"]["init_image"] == img2img.image_hash(pixels)
    with Image.open(out) as image:
        recipe = Recipe.from_json(image.text[RECIPE_KEY])
        assert "Init image hash" in image.text["parameters"]
    assert recipe.init_image == img2img.image_hash(pixels) and recipe.strength == 0.5


def test_strength_one_matches_text_to_image(capsys, tiny_model_dir, picture):
    _, path, _, _ = picture
    plain = render(capsys, *_common(tiny_model_dir), "--size", "32x24")
    full = render(capsys, *_common(tiny_model_dir), "--init-image", str(path), "--strength", "1")
    assert plain["sha256"] == full["sha256"]


def test_mask_keeps_the_pixels_outside_it(capsys, tiny_model_dir, tmp_path, picture):
    pixels, path, mask, mask_path = picture
    out = tmp_path / "inpainted.png"
    render(
        capsys,
        *_common(tiny_model_dir),
        "--init-image",
        str(path),
        "--strength",
        "0.9",
        "--mask",
        str(mask_path),
        "--out",
        str(out),
    )
    result = np.asarray(Image.open(out).convert("RGB"))
    assert np.array_equal(result[mask == 0], pixels[mask == 0])
    assert not np.array_equal(result[mask > 0], pixels[mask > 0])


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--strength", "1.5"], "strength must be a number from 0 to 1"),
        (["--strength", "0.5"], "need an --init-image"),
        (["--init-image", "missing.png"], "missing.png"),
    ],
)
def test_bad_input_is_one_sentence(capsys, tiny_model_dir, picture, extra, words):
    _, path, _, _ = picture
    if extra[0] == "--strength" and extra[1] == "1.5":
        extra = ["--init-image", str(path), *extra]
    assert main([*_common(tiny_model_dir), *extra]) != 0
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_a_mask_of_the_wrong_size_is_refused(capsys, tiny_model_dir, tmp_path, picture):
    _, path, _, _ = picture
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(small)
    assert main([*_common(tiny_model_dir), "--init-image", str(path), "--mask", str(small)]) != 0
    assert "The mask is 8×8 pixels but the init image is 32×24." in capsys.readouterr().err
