"""``main.py score``: one row per image in a subprocess, JSON form, one-sentence errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "score", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_score_prints_a_row_per_image_as_json_and_text(tiny_model_dir, tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for name in ("a.png", "b.png"):
        path = tmp_path / name
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    common = ("--prompt", "a red car", "--model", str(tiny_model_dir), "--timesteps", "2")
    done = _run(*paths, *common, "--noises", "1", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    rows = summary["scores"]
    assert [row["image"] for row in rows] == paths
    assert all(isinstance(row["fidelity"], float) and row["novelty"] > 0 for row in rows)
    assert summary["unet_evaluations_per_image"] == 2 * 1 * 2

    again = json.loads(_run(*paths, *common, "--noises", "1", "--json").stdout.splitlines()[-1])
    assert again["scores"] == rows

    text = _run(paths[0], *common, "--noises", "1")
    assert text.returncode == 0 and paths[0] in text.stdout and "fidelity" in text.stdout


def test_score_errors_are_one_sentence(tmp_path):
    done = _run(str(tmp_path / "missing.png"), "--prompt", "x")
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    bad = _run(str(tmp_path / "missing.png"), "--prompt", "x", "--timesteps", "0")
    assert bad.returncode == 2 and "Timesteps" in bad.stderr


def test_score_plugins_add_a_column_each(
    tiny_model_dir, tiny_clip_dir, tiny_aesthetic_dir, tmp_path
):
    from studio.document.imageio import read_image
    from studio.engine.plugins import PluginSpec, load_plugins

    paths = []
    for seed in (0, 2):  # images the fixed tiny CLIP gives a positive cosine with the prompt
        path = tmp_path / f"{seed}.png"
        Image.fromarray(
            np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        ).save(path)
        paths.append(str(path))
    prompt = "x" * 200
    clip = f"clip={tiny_clip_dir}"
    aesthetic = f"aesthetic={tiny_aesthetic_dir},clip={tiny_clip_dir}"
    common = ("--prompt", prompt, "--model", str(tiny_model_dir), "--timesteps", "1")
    done = _run(*paths, *common, "--noises", "1", "--plugin", clip, "--plugin", aesthetic, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert [p["name"] for p in summary["plugins"]] == ["clip", "aesthetic"]
    local = load_plugins([PluginSpec.parse(clip), PluginSpec.parse(aesthetic)])
    for row in summary["scores"]:
        pixels = read_image(Path(row["image"])).pixels[..., :3]
        assert {"image", "fidelity", "novelty", "clip", "aesthetic"} <= set(row)
        expected = [plugin.score([pixels], prompt)[0] for plugin in local]
        assert [row["clip"], row["aesthetic"]] == pytest.approx(expected, abs=1e-5)
        assert row["clip"] > 1.0

    text = _run(paths[0], *common, "--noises", "1", "--plugin", clip)
    assert text.returncode == 0 and text.stdout.splitlines()[0].split()[-1] == "clip"

    without = json.loads(_run(paths[0], *common, "--noises", "1", "--json").stdout.splitlines()[-1])
    assert "clip" not in without["scores"][0] and without["plugins"] == []


def test_a_plugin_folder_that_fails_is_one_sentence_before_the_model_loads(tmp_path):
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    (tmp_path / "clip" / "config.json").write_text('{"model_type": "clip"}')
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    for plugin, words in (
        (f"clip={tmp_path / 'clip'}", "pickle"),
        (f"aesthetic={tmp_path}", "CLIP folder too"),
        ("sharpness=/x", "no scorer plug-in"),
    ):
        # --model names nothing loadable: the plug-in's error must come first.
        done = _run(
            str(image), "--prompt", "x", "--model", str(tmp_path / "no-model"), "--plugin", plugin
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1
        assert words in done.stderr
