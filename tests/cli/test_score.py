"""``main.py score``: one row per image in a subprocess, JSON form, one-sentence errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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
