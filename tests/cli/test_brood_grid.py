"""brood and grid: many versions at once, each reproduced by its own recipe rendered alone."""

from __future__ import annotations

import json

from PIL import Image

from studio.cli import main, run_command


def _json(capsys, *argv: str) -> dict:
    assert run_command(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _render(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_brood_gives_distinct_children_whose_images_reproduce_them(
    capsys, tiny_model_dir, tmp_path
):
    model = ["--model", str(tiny_model_dir), "--size", "16x16", "--steps", "4"]
    summary = _json(
        capsys,
        "brood",
        *model,
        "--prompt",
        "a red fox",
        "--parents",
        "11:1,22:1",
        "--children",
        "4",
        "--dose",
        "0.3",
        "--out",
        str(tmp_path / "brood"),
        "--json",
    )
    children = summary["children"]
    assert len({c["sha256"] for c in children}) == 4
    assert len({c["recipe"]["mutation_seed"] for c in children}) == 4
    for child in children:
        again = _render(capsys, "--recipe", child["file"], "--model", str(tiny_model_dir))
        assert again["sha256"] == child["sha256"]
    # the same command breeds the same brood
    repeat = _json(
        capsys,
        "brood",
        *model,
        "--prompt",
        "a red fox",
        "--parents",
        "11:1,22:1",
        "--children",
        "4",
        "--dose",
        "0.3",
        "--out",
        str(tmp_path / "again"),
        "--json",
    )
    assert [c["sha256"] for c in repeat["children"]] == [c["sha256"] for c in children]


def test_one_parent_at_full_weight_renders_that_seed(capsys, tiny_model_dir):
    model = ["--model", str(tiny_model_dir), "--size", "16x16", "--steps", "4", "--prompt", "a fox"]
    seeded = _render(capsys, *model, "--seed", "11")
    assert (
        _render(capsys, *model, "--parents", "11:1", "--mutation", "5:0")["sha256"]
        == seeded["sha256"]
    )
    assert (
        _render(capsys, *model, "--parents", "11:1", "--mutation", "5:0.2")["sha256"]
        != seeded["sha256"]
    )


def test_grid_cells_equal_their_recipes_rendered_alone(capsys, tiny_model_dir, tmp_path):
    out = tmp_path / "grid.png"
    summary = _json(
        capsys,
        "grid",
        "--model",
        str(tiny_model_dir),
        "--size",
        "16x16",
        "--steps",
        "3",
        "--prompt",
        "a red fox",
        "--seeds",
        "1,2",
        "--axis",
        "cfg=3,7",
        "--axis",
        "prompt=red,blue",
        "--out",
        str(out),
        "--json",
    )
    cells = summary["cells"]
    assert len(cells) == 8 and {c["seed"] for c in cells} == {1, 2}
    assert {c["recipe"]["prompt"] for c in cells} == {"a red fox", "a blue fox"}
    for index, cell in enumerate(cells):
        path = tmp_path / f"cell{index}.json"
        path.write_text(json.dumps(cell))
        assert (
            _render(capsys, "--recipe", str(path), "--model", str(tiny_model_dir))["sha256"]
            == cell["sha256"]
        )
    with Image.open(out) as sheet:
        assert sheet.width > 2 * 16 and sheet.height > 4 * 16


def test_a_brood_of_parents_with_two_prompts_mixes_them_and_each_child_reproduces(
    capsys, tiny_model_dir, tmp_path
):
    model = ["--model", str(tiny_model_dir), "--size", "16x16", "--steps", "4"]
    prompts = ["--parent-prompt", "a red fox", "--parent-prompt", "a blue owl"]
    breed = [*model, "--parents", "11:1,22:3", *prompts, "--children", "2", "--dose", "0.3"]
    summary = _json(capsys, "brood", *breed, "--out", str(tmp_path / "mixed"), "--json")
    for child in summary["children"]:
        recipe = child["recipe"]
        assert recipe["prompt_mix"] == [["a red fox", 1.0], ["a blue owl", 3.0]]
        assert recipe["prompt"] == "a red fox × a blue owl"
        again = _render(capsys, "--recipe", child["file"], "--model", str(tiny_model_dir))
        assert again["sha256"] == child["sha256"]

    kept = _json(
        capsys, "brood", *breed, "--no-mix-prompts", "--out", str(tmp_path / "kept"), "--json"
    )
    for child, mixed in zip(kept["children"], summary["children"], strict=True):
        assert child["recipe"]["prompt"] == "a red fox" and "prompt_mix" not in child["recipe"]
        assert child["recipe"]["mutation_seed"] == mixed["recipe"]["mutation_seed"]
        assert child["sha256"] != mixed["sha256"]  # the mix is what changed the picture

    lone = _render(capsys, *model, "--parents", "11:1,22:3", *prompts, "--mutation", "5:0.2")
    assert lone["recipe"]["prompt_mix"] == [["a red fox", 1.0], ["a blue owl", 3.0]]
    unmixed = _render(
        capsys, "--recipe", summary["children"][0]["file"], "--model", str(tiny_model_dir),
        "--no-mix-prompts",
    )  # fmt: skip
    assert unmixed["recipe"]["prompt"] == "a red fox" and "prompt_mix" not in unmixed["recipe"]
    assert run_command(["brood", *breed, "--prompt", "x", "--out", str(tmp_path / "no")]) == 2
    assert "not both" in capsys.readouterr().err
