"""Checkpoint: everything needed to continue a run exactly from one step.

A checkpoint holds the latent after the step, the model's x0 prediction at that
step, the scheduler's mutable state (multistep history and counters) and the
recipe that produced it; per-step noise is derived from (seed, step), so no
generator state is needed. It serialises to safetensors bytes: tensors plus
JSON metadata, never pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from studio.engine.errors import CheckpointError
from studio.engine.recipe import Recipe, RecipeError

FORMAT = "noise-studio.checkpoint"
FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """The state after step ``step_index`` (0-based) of ``recipe``'s run."""

    recipe: Recipe
    step_index: int
    latent: torch.Tensor
    x0_pred: torch.Tensor
    scheduler_state: dict[str, Any] = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        return self.recipe.steps

    def to_bytes(self) -> bytes:
        """Safetensors bytes. Latent and scheduler tensors keep their dtype (exact resume);
        the x0 prediction, used only for previews and re-noising, is stored as float16."""
        tensors: dict[str, torch.Tensor] = {
            "latent": _cpu(self.latent),
            "x0_pred": _cpu(self.x0_pred.to(torch.float16)),
        }
        layout: dict[str, Any] = {}
        for key, value in self.scheduler_state.items():
            layout[key] = _encode_value(f"state.{key}", value, tensors)
        metadata = {
            "format": FORMAT,
            "version": str(FORMAT_VERSION),
            "recipe": self.recipe.to_json(),
            "step_index": str(self.step_index),
            "scheduler_state": json.dumps(layout),
        }
        return save_safetensors(tensors, metadata=metadata)

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """Read checkpoint bytes; raises CheckpointError on anything malformed."""
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < 8:
            raise CheckpointError("The checkpoint is empty or truncated.")
        if len(data) > MAX_CHECKPOINT_BYTES:
            raise CheckpointError("The checkpoint is larger than any run could produce.")
        data = bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        if header_len > len(data) - 8:
            raise CheckpointError("The checkpoint is truncated.")
        try:
            header = json.loads(data[8 : 8 + header_len])
            metadata = header.get("__metadata__", {})
            tensors = load_safetensors(data)
        except (ValueError, SafetensorError, AttributeError) as exc:
            raise CheckpointError(f"The checkpoint is corrupt ({exc}).") from None
        if metadata.get("format") != FORMAT:
            raise CheckpointError("The data is not a Noise Studio checkpoint.")
        if int(metadata.get("version", "0")) > FORMAT_VERSION:
            raise CheckpointError("The checkpoint was written by a newer Noise Studio.")
        try:
            recipe = Recipe.from_json(metadata["recipe"])
            step_index = int(metadata["step_index"])
            layout = json.loads(metadata["scheduler_state"])
            state = {key: _decode_value(spec, tensors) for key, spec in layout.items()}
            latent, x0_pred = tensors["latent"], tensors["x0_pred"].to(torch.float32)
        except (KeyError, ValueError, TypeError, RecipeError) as exc:
            raise CheckpointError(f"The checkpoint is incomplete ({exc}).") from None
        if not 0 <= step_index < recipe.steps:
            raise CheckpointError("The checkpoint's step lies outside its run.")
        return cls(recipe, step_index, latent, x0_pred, state)


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu").contiguous().clone()


def _encode_value(name: str, value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[name] = _cpu(value)
        return {"tensor": name}
    if isinstance(value, list):
        return {"list": [_encode_value(f"{name}.{i}", v, tensors) for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"Cannot store scheduler state of type {type(value).__name__}.")


def _decode_value(spec: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError("bad scheduler state layout")
    ((kind, payload),) = spec.items()
    if kind == "tensor":
        return tensors[payload]
    if kind == "list":
        return [_decode_value(item, tensors) for item in payload]
    if kind == "value":
        if payload is not None and not isinstance(payload, (bool, int, float, str)):
            raise ValueError("bad scheduler state value")
        return payload
    raise ValueError(f"unknown scheduler state kind {kind!r}")
