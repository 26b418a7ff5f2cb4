"""``render --init-image FILE --outpaint L,T,R,B``: extend an image and fill the new area
through the inpainting path, the old area exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from studio.cli import main
from studio.engine import img2img, init_pixels
from studio.engine.recipe import Recipe
from studio.formats import RECIPE_KEY


def render(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def picture(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 255, (16, 20, 3), dtype=np.uint8)
    path = tmp_path / "init.png"
    Image.fromarray(pixels).save(path)
    return pixels, path


def _common(model_dir) -> list[str]:
    return ["--model", str(model_dir), "--prompt", "a red car", "--seed", "4", "--steps", "5"]


def test_outpaint_keeps_the_old_area_exact_and_fills_the_new(
    capsys, tiny_model_dir, tmp_path, picture
):
    pixels, path = picture
    out = tmp_path / "out.png"
    summary = render(
        capsys, *_common(tiny_model_dir), "--init-image", str(path), "--outpaint", "4,2,6,0",
        "--out", str(out),
    )  # fmt: skip
    assert (summary["width"], summary["height"]) == (30, 18) and summary["steps_run"] == 5
    result = np.asarray(Image.open(out).convert("RGB"))
    assert result.shape == (18, 30, 3)
    assert np.array_equal(result[2:18, 4:24], pixels)
    padded, mask = init_pixels.pad_for_outpaint(pixels, (4, 2, 6, 0))
    assert (mask[2:18, 4:24] == 0).all() and (mask[:, 24 + 8 :] == 255).all()
    new = mask > 0
    assert not np.array_equal(result[new], padded[new])  # generated, not the stretched edge
    recipe = Recipe.from_json(Image.open(out).text[RECIPE_KEY])
    assert recipe.init_image == img2img.image_hash(padded)
    assert recipe.mask == img2img.image_hash(mask) and recipe.strength == 1.0


def test_outpaint_reproduces_from_its_recipe(capsys, tiny_model_dir, tmp_path, picture):
    _, path = picture
    first = render(
        capsys, *_common(tiny_model_dir), "--init-image", str(path), "--extend", "0,0,4,4"
    )
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps(first["recipe"]))
    again = render(
        capsys, "--model", str(tiny_model_dir), "--recipe", str(recipe_file),
        "--init-image", str(path), "--outpaint", "0,0,4,4",
    )  # fmt: skip
    assert again["sha256"] == first["sha256"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--outpaint", "1,2,3"], "four whole numbers of pixels"),
        (["--outpaint", "0,0,0,0"], "adds no pixels"),
        (["--outpaint", "1,0,0,0"], "multiple of"),
        (["--outpaint", "2,0,0,0", "--mask", "x.png"], "not both"),
    ],
)
def test_bad_padding_is_one_sentence(capsys, tiny_model_dir, picture, extra, words):
    _, path = picture
    assert main([*_common(tiny_model_dir), "--init-image", str(path), *extra]) != 0
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_outpaint_needs_an_init_image(capsys, tiny_model_dir):
    assert main([*_common(tiny_model_dir), "--outpaint", "2,2,2,2"]) != 0
    assert "need an --init-image" in capsys.readouterr().err
