"""``render --cross-at K --parents-recipes A,B``: a crossed child that its recipe reproduces."""

from __future__ import annotations

import json

from PIL import Image

from studio.cli import main
from studio.engine.recipe import Recipe


def _render(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_cross_at_a_step_renders_and_reproduces_from_its_recipe(capsys, tiny_model_dir, tmp_path):
    common = ["--model", str(tiny_model_dir), "--steps", "6", "--size", "32x32"]
    a, b, child = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "child.png"
    _render(capsys, *common, "--prompt", "a red car", "--seed", "4", "--out", str(a))
    _render(capsys, *common, "--prompt", "a blue boat", "--seed", "9", "--out", str(b))
    crossed = _render(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--cross-at",
        "3",
        "--parents-recipes",
        f"{a},{b}:2",
        "--mutation",
        "5:0.3",
        "--out",
        str(child),
    )
    point = crossed["recipe"]["cross"]
    assert point["step_index"] == 2 and point["seed"] == 5 and point["dose"] == 0.3
    assert [p["weight"] for p in point["parents"]] == [1.0, 2.0]
    assert crossed["steps_run"] == 3
    with Image.open(child) as image:
        assert "Cross: step 3 of" in image.text["parameters"]
    again = _render(capsys, "--model", str(tiny_model_dir), "--recipe", str(child))
    assert again["sha256"] == crossed["sha256"]
    assert Recipe.from_dict(again["recipe"]).cross == Recipe.from_dict(crossed["recipe"]).cross
    undosed = _render(
        capsys, "--model", str(tiny_model_dir), "--cross-at", "3", "--parents-recipes", f"{a},{b}"
    )
    assert undosed["sha256"] != crossed["sha256"]


def test_unlike_parents_are_refused_in_one_sentence(capsys, tiny_model_dir, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(Recipe("a red car", steps=6, width=32, height=32).to_json())
    b.write_text(Recipe("a blue boat", steps=8, width=32, height=32).to_json())
    args = ["--model", str(tiny_model_dir), "--cross-at", "3", "--parents-recipes", f"{a},{b}"]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "same model, size, steps and sampler" in err and err.count(".") <= 2
    assert main(["--cross-at", "3", "--parents-recipes", str(a)]) != 0
    assert "exactly two" in capsys.readouterr().err
