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
from studio.engine.schedulers import STATE_KEYS

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
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise CheckpointError("The data is not a Noise Studio checkpoint.")
        version = _whole_number(metadata.get("version"))
        if version is not None and version > FORMAT_VERSION:
            raise CheckpointError("The checkpoint was written by a newer Noise Studio.")
        if version is None or version < 1:
            raise CheckpointError(
                f"The checkpoint's format version {str(metadata.get('version'))[:20]!r} is not one Noise Studio wrote."
            )
        try:
            recipe = Recipe.from_json(metadata["recipe"])
            step_index = _whole_number(metadata["step_index"])
            layout = json.loads(metadata["scheduler_state"])
            if not isinstance(layout, dict):
                raise ValueError("the scheduler state is not a map")
            state = {key: _decode_value(spec, tensors) for key, spec in layout.items()}
            latent, x0_stored = tensors["latent"], tensors["x0_pred"]
        except (KeyError, ValueError, TypeError, RecursionError, RecipeError) as exc:
            raise CheckpointError(f"The checkpoint is incomplete ({str(exc)[:80]}).") from None
        if step_index is None or not 0 <= step_index < recipe.steps:
            raise CheckpointError("The checkpoint's step lies outside its run.")
        _check_contents(recipe, step_index, latent, x0_stored, state)
        return cls(recipe, step_index, latent, x0_stored.to(torch.float32), state)


def _whole_number(text: Any) -> int | None:
    return int(text) if isinstance(text, str) and text.isascii() and text.isdigit() else None


def _check_contents(
    recipe: Recipe,
    step_index: int,
    latent: torch.Tensor,
    x0_stored: torch.Tensor,
    state: dict[str, Any],
) -> None:
    """Refuse a checkpoint whose tensors or state could not come from ``recipe``'s run.

    The latent must be one float32 image whose size divides the recipe's evenly,
    the x0 prediction (stored as float16) must match it, the multistep history must
    hold latents of its shape, the scheduler's counters must agree with the step,
    and every value must be finite. Fit to the model and the sampler is checked
    again when the run resumes (``schedulers.check_state``)."""

    def refuse(detail: str) -> CheckpointError:
        return CheckpointError(f"The checkpoint is damaged or tampered with: {detail}.")

    if latent.dtype != torch.float32 or latent.dim() != 4 or latent.shape[0] != 1:
        raise refuse(
            f"its latent is {str(latent.dtype).removeprefix('torch.')} {list(latent.shape)}, not one float32 image"
        )
    rows, columns = latent.shape[2], latent.shape[3]
    if (
        rows == 0
        or columns == 0
        or recipe.height % rows
        or recipe.width % columns
        or recipe.height // rows != recipe.width // columns
    ):
        raise refuse(
            f"its latent of {columns}x{rows} does not fit a {recipe.width}x{recipe.height} image"
        )
    if x0_stored.dtype not in (torch.float16, torch.float32) or x0_stored.shape != latent.shape:
        raise refuse(f"its x0 prediction {list(x0_stored.shape)} does not match its latent")
    unknown = sorted(set(state) - set(STATE_KEYS))
    if unknown:
        raise refuse(f"it holds the unknown sampler state {unknown[0][:40]!r}")
    counter = state.get("_step_index")
    if counter is not None and counter != step_index + 1:
        raise refuse(f"its sampler state is at step {counter}, but it says step {step_index + 1}")
    run_length = state.get("num_inference_steps")
    if run_length is not None and run_length != recipe.steps:
        raise refuse(
            f"its sampler state is for {run_length} steps, but its recipe has {recipe.steps}"
        )
    for key in ("model_outputs", "last_sample", "sample", "prev_derivative"):
        value = state.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, torch.Tensor) and (
                item.dtype != torch.float32 or item.shape != latent.shape
            ):
                raise refuse(f"its sampler history {key} does not match its latent")
    tensors = [latent, x0_stored, *_tensors_in(state.values())]
    if not all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point()):
        raise refuse("it holds values that are not finite (NaN or infinite)")


def _tensors_in(values: Any) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, list):
            found.extend(_tensors_in(value))
    return found


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
