"""``main.py info``: the recipe an image carries, read back exactly as the studio's import reads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.app import main as installed_command
from studio.cli import EXIT_ERROR, info_main
from studio.document.imageio import read_layer, recipe_from_metadata
from studio.engine.recipe import Recipe
from studio.engine.schedulers import SAMPLERS

ROOT = Path(__file__).resolve().parents[2]
GUIDANCE = 6.123456789


def main_py(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def recipe_as_imported(path: Path):
    """What the window does with a dropped or imported image (ImageImporter), minus Qt."""
    _layer, metadata = read_layer(path)
    return recipe_from_metadata(metadata, SAMPLERS)


def _png(path: Path, pnginfo: PngInfo | None = None) -> Path:
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path, "PNG", pnginfo=pnginfo)
    return path


def one_sentence(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Traceback" not in err
    return err


def test_a_cli_render_reads_back_exactly_in_info_and_in_the_studio(tmp_path):
    out = tmp_path / "car.png"
    rendered = main_py(
        "render",
        "--prompt",
        "a red car on a mountain road at sunset",
        "--seed",
        "3",
        "--steps",
        "3",
        "--cfg",
        str(GUIDANCE),
        "--out",
        str(out),
        "--json",
    )
    assert rendered.returncode == 0, rendered.stderr
    made = Recipe.from_dict(json.loads(rendered.stdout.strip().splitlines()[-1])["recipe"])

    shown = main_py("info", str(out), "--json")
    assert shown.returncode == 0, shown.stderr
    (line,) = shown.stdout.strip().splitlines()
    info = json.loads(line)
    imported = recipe_as_imported(out)

    assert info["source"] == imported.source == "json"
    assert Recipe.from_dict(info["recipe"]) == imported.recipe == made
    assert imported.recipe.guidance == GUIDANCE
    assert info["warnings"] == [] and imported.warnings == ()
    # the A1111 text alone would have rounded the guidance: the JSON recipe is what kept it
    assert Recipe.from_parameters(info["parameters"]).guidance != GUIDANCE


def test_human_readable_info_names_where_the_recipe_came_from(tmp_path, capsys):
    recipe = Recipe("a blue boat", seed=9, guidance=GUIDANCE)
    info = PngInfo()
    info.add_text("parameters", recipe.to_parameters())
    path = _png(tmp_path / "a1111.png", info)
    assert installed_command(["info", str(path)]) == 0  # the `noise-studio` command takes it too
    out = capsys.readouterr().out
    assert out.startswith(recipe.to_parameters() + "\n")
    assert "A1111 parameters text only" in out


def test_the_old_recipe_key_still_reads_exactly(tmp_path, capsys):
    recipe = Recipe("a green tree", seed=5, guidance=GUIDANCE, steps=7)
    info = PngInfo()
    info.add_text("parameters", recipe.to_parameters())
    info.add_itxt("noise_studio_recipe", recipe.to_json())  # what the CLI wrote before
    path = _png(tmp_path / "old.png", info)

    imported = recipe_as_imported(path)
    assert imported.source == "json" and imported.recipe == recipe
    assert info_main([str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["source"] == "json" and Recipe.from_dict(shown["recipe"]) == recipe


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("notes.png", b"this is not an image\n", "not a PNG, JPEG or WebP"),
        ("missing.png", None, "could not be read"),
        ("plain.png", "no-metadata", "carries no recipe"),
    ],
)
def test_info_on_a_bad_file_exits_2_with_one_sentence(tmp_path, capsys, name, content, words):
    path = tmp_path / name
    if content == "no-metadata":
        _png(path)
    elif content is not None:
        path.write_bytes(content)
    assert info_main([str(path)]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    assert words in one_sentence(captured.err)


def test_info_in_a_process_refuses_a_non_image_without_a_traceback(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = main_py("info", str(path))
    assert result.returncode == EXIT_ERROR and result.stdout == ""
    assert "notes.txt" in one_sentence(result.stderr)
    assert main_py("info", str(path), "--debug").stderr.count("Traceback") == 1
