"""Bad input at the CLI (issue 7): one sentence on stderr, exit 2, no traceback, nothing run."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli import EXIT_ERROR, main
from tests.engine.hostile_inputs import evil_pickle, torch_style_zip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_model_loading(monkeypatch):
    """Validation must fail before any model is touched."""
    from studio.engine import models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for a recipe that should have been refused")

    monkeypatch.setattr(models, "load_model", refuse)


def one_sentence(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Traceback" not in err
    return err.strip()


def refusal_of_a_process(*render_args: str) -> str:
    """Run ``main.py render`` in a fresh process; assert it refused in one sentence, return it."""
    result = subprocess.run(
        [sys.executable, "main.py", "render", *render_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_ERROR
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--size", "8x64"], "width"),
        (["--size", "64x9000"], "height"),
        (["--steps", "10000"], "Steps"),
        (["--steps", "0"], "Steps"),
        (["--cfg", "-1"], "CFG"),
        (["--cfg", "inf"], "CFG"),
        (["--seed", str(2**64)], "seed"),
        (["--seed", "-5"], "seed"),
        (["--variation-seed", str(2**80), "--variation-strength", "0.5"], "variation seed"),
        (["--variation-strength", "nan", "--variation-seed", "1"], "variation strength"),
    ],
)
def test_invalid_options_are_refused_before_loading(capsys, no_model_loading, args, words):
    assert main(["--prompt", "a red car", *args]) == EXIT_ERROR
    assert words in one_sentence(capsys)


def test_size_not_a_multiple_of_the_model_factor(capsys, tiny_model_dir, tmp_path):
    out = tmp_path / "x.png"
    assert (
        main(
            ["--model", str(tiny_model_dir), "--prompt", "x", "--size", "17x16", "--out", str(out)]
        )
        == 2
    )
    assert "multiple of 2" in one_sentence(capsys)
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_a_pickle_model_is_refused_and_never_run(capsys, tmp_path, suffix):
    marker = tmp_path / "ran"
    model = tmp_path / f"model{suffix}"
    model.write_bytes(evil_pickle(marker))
    assert main(["--model", str(model), "--prompt", "x"]) == EXIT_ERROR
    assert str(model) in one_sentence(capsys)
    assert not marker.exists()


def test_a_model_folder_with_a_missing_part_names_it(capsys, tiny_model_dir, tmp_path):
    import shutil

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    (folder / "scheduler" / "scheduler_config.json").unlink()
    assert main(["--model", str(folder), "--prompt", "x"]) == EXIT_ERROR
    assert "missing scheduler/scheduler_config.json" in one_sentence(capsys)


def test_the_process_refuses_a_torch_zip_without_traceback_or_marker(tmp_path):
    marker = tmp_path / "ran"
    model = tmp_path / "download.safetensors"
    model.write_bytes(torch_style_zip(pickle.dumps(0) + evil_pickle(marker), "weird/../data.pkl"))
    stderr = refusal_of_a_process("--model", str(model), "--prompt", "x", "--steps", "10000")
    assert "Steps" in stderr  # validation comes first: nothing reached the engine
    stderr = refusal_of_a_process("--model", str(model), "--prompt", "x")
    assert str(model) in stderr and "refuses" in stderr
    assert not marker.exists()


# ---- --resume FILE: stat first, then read (issue 11, item 4) ------------------------------


def _limited_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def refusal_of_a_bounded_process(*render_args: str) -> str:
    """Like ``refusal_of_a_process``, in 3 GiB of address space and 60 s: a read that never
    ends fails the test instead of the machine."""
    import time

    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "main.py", "render", *render_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limited_memory,
    )
    assert result.returncode == EXIT_ERROR, result.stderr[-500:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert time.monotonic() - began < 60
    return result.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_resume_from_a_device_is_refused_without_reading_it():
    stderr = refusal_of_a_bounded_process("--resume", "/dev/zero")
    assert "/dev/zero" in stderr and "not a regular file" in stderr


def test_resume_from_a_fifo_is_refused_without_waiting(tmp_path):
    import os

    fifo = tmp_path / "checkpoint.fifo"
    os.mkfifo(fifo)
    stderr = refusal_of_a_bounded_process("--resume", str(fifo))
    assert str(fifo) in stderr and "not a regular file" in stderr


def test_a_recipe_file_that_is_a_fifo_is_refused_without_waiting(tmp_path):
    import os

    fifo = tmp_path / "recipe.json"
    os.mkfifo(fifo)
    stderr = refusal_of_a_bounded_process("--recipe", str(fifo))
    assert str(fifo) in stderr and "not a regular file" in stderr


@pytest.mark.parametrize("form", ["json", "png"])
def test_a_recipe_file_with_a_huge_prompt_is_cut_with_a_note(capsys, tmp_path, form):
    import numpy as np
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from studio import formats
    from studio.cli import read_recipe_file
    from studio.engine.recipe import MAX_PROMPT_CHARS, Recipe

    huge = Recipe("h" * 1_000_000, seed=6)
    if form == "json":
        path = tmp_path / "huge.json"
        path.write_text(huge.to_json())
    else:
        info = PngInfo()
        info.add_itxt(formats.RECIPE_KEY, huge.to_json())
        path = tmp_path / "huge.png"
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, pnginfo=info)
    recipe = read_recipe_file(path)
    assert recipe.prompt == "h" * MAX_PROMPT_CHARS and recipe.seed == 6
    err = capsys.readouterr().err
    assert err.startswith("note: ") and "1,000,000" in err and err.count("\n") == 1


def test_resume_from_an_oversized_file_is_refused_before_reading(
    capsys, tmp_path, no_model_loading
):
    import tracemalloc

    from studio.engine.checkpoint import MAX_CHECKPOINT_BYTES

    big = tmp_path / "big.checkpoint"
    with open(big, "wb") as file:
        file.truncate(MAX_CHECKPOINT_BYTES + 1)  # sparse: nothing is written
    tracemalloc.start()
    try:
        status = main(["--resume", str(big)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == EXIT_ERROR
    sentence = one_sentence(capsys)
    assert str(big) in sentence and "more than" in sentence
    assert peak < 16 * 1024 * 1024


def test_resume_from_a_missing_file_names_it(capsys, tmp_path, no_model_loading):
    assert main(["--resume", str(tmp_path / "nowhere")]) == EXIT_ERROR
    assert "nowhere" in one_sentence(capsys)
