"""The headless CLI: render, checkpoint, resume/branch, JSON summary and one-sentence errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from studio.cli import main
from studio.engine.recipe import Recipe

ROOT = Path(__file__).resolve().parents[2]


def render(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_render_writes_image_metadata_steps_and_checkpoint(capsys, tiny_model_dir, tmp_path):
    out, steps_dir, ckpt = tmp_path / "a.png", tmp_path / "steps", tmp_path / "k3.ckpt"
    summary = render(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--prompt",
        "a red car",
        "--seed",
        "4",
        "--steps",
        "6",
        "--size",
        "32x24",
        "--scheduler",
        "DPM++ 2M",
        "--out",
        str(out),
        "--every-step",
        str(steps_dir),
        "--checkpoint-at",
        "3",
        str(ckpt),
    )
    assert (
        summary["steps_run"] == 6 and summary["device"] == "cpu" and summary["dtype"] == "float32"
    )
    assert summary["tokens_dropped"] == 0 and len(summary["sha256"]) == 64
    assert sorted(p.name for p in steps_dir.iterdir()) == [f"step_{i:04d}.png" for i in range(1, 7)]
    with Image.open(out) as image:
        assert image.size == (32, 24)
        assert Recipe.from_parameters(image.text["parameters"]).seed == 4
    assert ckpt.stat().st_size > 0

    resumed = render(capsys, "--resume", str(ckpt))
    assert resumed["steps_run"] == 3 and resumed["resumed_from"] == 3
    assert resumed["sha256"] == summary["sha256"]

    branched = render(capsys, "--resume", str(ckpt), "--prompt", "a blue boat")
    assert branched["sha256"] != summary["sha256"] and branched["recipe"]["prompt"] == "a blue boat"


def test_long_prompt_reports_dropped_tokens(capsys, tiny_model_dir):
    summary = render(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--prompt",
        "car " * 50,
        "--steps",
        "1",
        "--size",
        "16x16",
    )
    assert summary["tokens_dropped"] > 0 and summary["dropped_text"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--prompt", "x", "--size", "33x32"], "multiple of 2"),
        (["--prompt", "x", "--steps", "0"], "Steps"),
        (["--prompt", "x", "--cfg", "nan"], "CFG"),
        (["--prompt", "x", "--seed", str(2**64)], "seed"),
        (["--prompt", "x", "--scheduler", "Nope"], "Unknown sampler"),
        (["--prompt", "x", "--size", "big"], "--size"),
        (["--steps", "3"], "--prompt"),
    ],
)
def test_bad_options_give_one_sentence_and_exit_2(capsys, tiny_model_dir, args, words):
    assert main(["--model", str(tiny_model_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and words in err and "\n" not in err


def test_missing_model_and_bad_checkpoint(capsys, tmp_path):
    assert main(["--model", str(tmp_path / "nope"), "--prompt", "x"]) == 2
    assert "was not found" in capsys.readouterr().err
    (tmp_path / "bad.ckpt").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    assert main(["--resume", str(tmp_path / "bad.ckpt")]) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_process_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "main.py",
            "render",
            "--model",
            str(tmp_path / "missing"),
            "--prompt",
            "x",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.startswith("error:")


def test_every_step_writes_the_tiny_decoders_full_size_previews(capsys, tiny_model_dir, tmp_path):
    import shutil

    import numpy as np

    from studio.engine.models import load_model
    from studio.engine.sampler import Sampler
    from tests.tiny_models import build_tiny_preview_decoder

    model_dir = tmp_path / "with-decoder"
    shutil.copytree(tiny_model_dir, model_dir)
    build_tiny_preview_decoder(model_dir / "preview_decoder")
    steps_dir = tmp_path / "steps"
    summary = render(
        capsys,
        *("--model", str(model_dir), "--prompt", "a red car", "--steps", "2"),
        *("--size", "32x24", "--every-step", str(steps_dir)),
    )
    model = load_model(str(model_dir), device="cpu")
    recipe = Recipe.from_dict(summary["recipe"])
    last = list(Sampler(model).run(recipe))[-1]
    assert last.preview_x0.shape == (24, 32, 3)  # the tiny decoder's, not 12x16 enlarged
    with Image.open(steps_dir / "step_0002.png") as written:
        assert np.array_equal(np.asarray(written.convert("RGB")), last.preview_x0)
