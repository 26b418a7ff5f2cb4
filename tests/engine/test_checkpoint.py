from __future__ import annotations

import json

import pytest
import torch

from studio.engine.checkpoint import Checkpoint
from studio.engine.errors import CheckpointError
from studio.engine.recipe import Recipe


def _checkpoint() -> Checkpoint:
    state = {
        "_step_index": 3,
        "lower_order_nums": 2,
        "model_outputs": [torch.ones(1, 4, 2, 2), None],
        "this_order": 1.5,
        "_begin_index": None,
    }
    return Checkpoint(
        Recipe("x", steps=8), 2, torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2), state
    )


def test_round_trip_keeps_latent_exact_and_state():
    original = _checkpoint()
    restored = Checkpoint.from_bytes(original.to_bytes())
    assert torch.equal(restored.latent, original.latent)
    assert restored.recipe == original.recipe and restored.step_index == 2
    assert restored.scheduler_state["_step_index"] == 3
    assert restored.scheduler_state["_begin_index"] is None
    assert torch.equal(restored.scheduler_state["model_outputs"][0], torch.ones(1, 4, 2, 2))
    assert restored.scheduler_state["model_outputs"][1] is None


def test_bytes_are_safetensors_with_json_metadata_not_pickle():
    data = _checkpoint().to_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    assert header["__metadata__"]["format"] == "noise-studio.checkpoint"
    assert b"\x80\x04" not in data[:2]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: b"",
        lambda d: d[: len(d) // 2],
        lambda d: d[:8],
        lambda d: b"\x89PNG\r\n\x1a\n" + d[8:],
        lambda d: d.replace(b"noise-studio.checkpoint", b"something-else-entirely"),
    ],
)
def test_bad_bytes_raise_checkpoint_error(mangle):
    with pytest.raises(CheckpointError):
        Checkpoint.from_bytes(mangle(_checkpoint().to_bytes()))
