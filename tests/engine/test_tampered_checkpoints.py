"""Checkpoints tampered with after they were written (issue 11, item 14).

Each case takes a real checkpoint of a tiny DPM++ run and changes one thing in
its bytes. Resuming from it must be refused with one sentence: exit 2 from the
CLI, JobFailed from the worker, never a traceback and never a wrong image.
"""

from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from studio.cli import EXIT_ERROR, main
from studio.engine.checkpoint import Checkpoint
from studio.engine.errors import CheckpointError
from studio.engine.recipe import Recipe

STEP = 1  # the checkpoint after the second step: DPM++ has two outputs in its history


@pytest.fixture(scope="module")
def checkpoint_bytes(tiny_model, tiny_model_dir) -> bytes:
    from studio.engine.sampler import Sampler

    recipe = Recipe(
        prompt="a red car",
        steps=4,
        width=16,
        height=16,
        seed=3,
        sampler="DPM++ 2M",
        model=str(tiny_model_dir),
    )
    steps = list(Sampler(tiny_model).run(recipe))
    return steps[STEP].checkpoint.to_bytes()


def _tampered(data: bytes, change) -> bytes:
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    metadata = dict(header["__metadata__"])
    tensors = dict(load_safetensors(data))
    layout = json.loads(metadata["scheduler_state"])
    recipe = json.loads(metadata["recipe"])
    change(metadata, tensors, layout, recipe)
    metadata["scheduler_state"] = json.dumps(layout)
    metadata["recipe"] = json.dumps(recipe)
    return save_safetensors(tensors, metadata=metadata)


def _set(mapping: dict, key: str, value) -> None:
    mapping[key] = value


def _longer_history(metadata, tensors, layout, recipe):
    tensors["state.model_outputs.2"] = tensors["state.model_outputs.1"].clone()
    layout["model_outputs"]["list"].append({"tensor": "state.model_outputs.2"})


def _shorter_history(metadata, tensors, layout, recipe):
    layout["model_outputs"]["list"].pop()
    del tensors["state.model_outputs.1"]


_TAMPERINGS = {
    "version is not a number": lambda meta, ten, lay, rec: _set(meta, "version", "abc"),
    "version zero": lambda meta, ten, lay, rec: _set(meta, "version", "0"),
    "step index not a number": lambda meta, ten, lay, rec: _set(meta, "step_index", "one"),
    "_step_index far outside": lambda meta, ten, lay, rec: _set(
        lay, "_step_index", {"value": 10**9}
    ),
    "_step_index a string": lambda meta, ten, lay, rec: _set(lay, "_step_index", {"value": "2"}),
    "_step_index disagrees with the step": lambda meta, ten, lay, rec: _set(
        lay, "_step_index", {"value": STEP + 2}
    ),
    "unknown state key": lambda meta, ten, lay, rec: _set(lay, "__class__", {"value": 1}),
    "history too long": _longer_history,
    "history too short": _shorter_history,
    "history of the wrong shape": lambda meta, ten, lay, rec: _set(
        ten, "state.model_outputs.1", torch.zeros(1, 4, 3, 3)
    ),
    "steps changed to 1000": lambda meta, ten, lay, rec: _set(rec, "steps", 1000),
    "int64 latent": lambda meta, ten, lay, rec: _set(ten, "latent", ten["latent"].to(torch.int64)),
    "bool latent": lambda meta, ten, lay, rec: _set(ten, "latent", ten["latent"] > 0),
    "fp16 latent": lambda meta, ten, lay, rec: _set(ten, "latent", ten["latent"].to(torch.float16)),
    "NaN latent": lambda meta, ten, lay, rec: ten["latent"].view(-1).__setitem__(0, float("nan")),
    "infinite history": lambda meta, ten, lay, rec: (
        ten["state.model_outputs.1"].view(-1).__setitem__(0, float("inf"))
    ),
    "latent of another size": lambda meta, ten, lay, rec: _set(
        ten, "latent", torch.zeros(1, 4, 8, 4)
    ),
    "x0 of the wrong shape": lambda meta, ten, lay, rec: _set(
        ten, "x0_pred", torch.zeros(1, 4, 2, 2, dtype=torch.float16)
    ),
}


def test_the_untampered_checkpoint_resumes(checkpoint_bytes, tmp_path, capsys):
    path = tmp_path / "good.checkpoint"
    path.write_bytes(checkpoint_bytes)
    assert main(["--resume", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps_run"] == 4 - STEP - 1


@pytest.mark.parametrize("case", list(_TAMPERINGS))
def test_the_cli_refuses_a_tampered_checkpoint_in_one_sentence(
    checkpoint_bytes, tmp_path, capsys, case
):
    path = tmp_path / "tampered.checkpoint"
    path.write_bytes(_tampered(checkpoint_bytes, _TAMPERINGS[case]))
    status = main(["--resume", str(path), "--renoise-strength", "0.5"])
    err = capsys.readouterr().err
    assert status == EXIT_ERROR
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert "checkpoint" in err.lower()
    assert "became invalid" not in err


@pytest.mark.parametrize(
    "case",
    ["version zero", "unknown state key", "NaN latent", "_step_index disagrees with the step"],
)
def test_reading_refuses_what_it_can_see_alone(checkpoint_bytes, case):
    with pytest.raises(CheckpointError):
        Checkpoint.from_bytes(_tampered(checkpoint_bytes, _TAMPERINGS[case]))


@pytest.mark.parametrize("case", ["unknown state key", "history too long", "steps changed to 1000"])
def test_the_worker_reports_job_failed_in_one_sentence(checkpoint_bytes, tiny_model_dir, case):
    from studio.engine.models import load_model
    from studio.protocol import JobFailed, JobFinished, LoadModel, ModelLoaded, Resume, StepMade
    from studio.workers.local import LocalWorker

    data = _tampered(checkpoint_bytes, _TAMPERINGS[case])
    recipe = Checkpoint.from_bytes(checkpoint_bytes).recipe
    messages: list[object] = []
    client = LocalWorker(load_model=lambda ref: load_model(ref, device="cpu"))
    client.listen(messages.append)
    client.start()
    try:
        client.send(LoadModel(recipe.model))
        client.send(Resume(1, "version-1", recipe, data))
        deadline = time.monotonic() + 60
        while not any(isinstance(m, (JobFailed, JobFinished)) for m in messages):
            assert time.monotonic() < deadline, "the worker never ended the job"
            time.sleep(0.01)
    finally:
        assert client.stop(timeout=20)
    assert any(isinstance(m, ModelLoaded) for m in messages)
    (failed,) = [m for m in messages if isinstance(m, JobFailed)]
    assert "\n" not in failed.error and "checkpoint" in failed.error.lower()
    assert not any(isinstance(m, StepMade) for m in messages)
