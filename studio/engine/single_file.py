"""Reading an original-format single-file checkpoint (SD 1.x / 2.x / XL) into diffusers parts.

One copy in memory: each tensor the parts use is read from the ``.safetensors``
file on its own, cast straight to the target dtype and device, renamed by
diffusers' own converters, and then becomes the parameter itself
(``load_state_dict(assign=True)`` into parts built on the meta device), so
neither a randomly initialised model nor a second state dict ever exists.
Tensors of no part (EMA copies, the training state) are never read.

The caller has already checked the file's bytes and the config folder
(``studio.engine.model_files``); nothing here prints progress bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from studio.engine.errors import ModelError

PART_PREFIXES = {
    "unet": ("model.diffusion_model.",),
    "vae": ("first_stage_model.",),
    "text_encoder": ("cond_stage_model.", "conditioner.embedders.0."),
    "text_encoder_2": ("conditioner.embedders.1.",),
}
"""Where each part's tensors live in the original key names."""
_READ_PREFIXES = tuple(prefix for prefixes in PART_PREFIXES.values() for prefix in prefixes)


def read_checkpoint(path: Path, dtype: torch.dtype, device: torch.device) -> dict[str, Any]:
    """The tensors of every part, each cast to ``dtype`` on ``device`` as it is read."""
    from safetensors import safe_open

    state: dict[str, Any] = {}
    with safe_open(str(path), framework="pt", device="cpu") as file:
        for key in file.keys():  # noqa: SIM118 - safe_open is not iterable
            if not key.startswith(_READ_PREFIXES):
                continue
            tensor = file.get_tensor(key)
            target = dtype if tensor.is_floating_point() else tensor.dtype
            state[key] = tensor.to(device=device, dtype=target)
    return state


def load_part(
    part: str,
    checkpoint: dict[str, Any],
    config_dir: Path,
    dtype: torch.dtype,
    text_class: Any = None,
    source: Path | None = None,
) -> Any:
    """Build one part (``unet``, ``vae``, ``text_encoder`` or ``text_encoder_2``) from
    ``checkpoint`` with the config in ``config_dir / part``; its tensors leave ``checkpoint``.

    Raises ModelError when the file lacks a tensor the config builds."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders import single_file_utils as convert

    folder = config_dir / part
    with torch.device("meta"):  # parameters without storage: the file's tensors become them
        if part == "unet":
            model = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder))
        elif part == "vae":
            model = AutoencoderKL.from_config(AutoencoderKL.load_config(folder))
        else:
            model = text_class(text_class.config_class.from_pretrained(folder))
    if part == "unet":
        state = convert.convert_ldm_unet_checkpoint(checkpoint, dict(model.config))
    elif part == "vae":
        state = convert.convert_ldm_vae_checkpoint(checkpoint, dict(model.config))
    else:
        state = _text_state(part, model, checkpoint)
    for prefix in PART_PREFIXES[part]:
        for key in [k for k in checkpoint if k.startswith(prefix)]:
            del checkpoint[key]
    missing = sorted(set(model.state_dict()) - set(state))
    if missing:
        raise ModelError(
            f"{source or 'The file'} lacks {len(missing)} of the tensors the {part} of {config_dir} requires "
            f"(e.g. {missing[0]}), so the model is refused rather than filled with random values."
        )
    state = {
        key: value.to(dtype) if value.is_floating_point() else value for key, value in state.items()
    }
    model.load_state_dict(state, strict=False, assign=True)
    del state
    _rebuild_position_ids(model)
    left = [name for name, tensor in _tensors(model) if tensor.is_meta]
    if left:
        raise ModelError(
            f"The {part} of {config_dir} has {left[0]}, which no file fills, so the model is refused."
        )
    return model.eval().requires_grad_(False)


def _text_state(part: str, model: Any, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The text encoder's tensors renamed to transformers' names (as diffusers'
    ``create_diffusers_clip_model_from_ldm`` picks the converter)."""
    from diffusers.loaders import single_file_utils as convert

    if part == "text_encoder_2":
        state = convert.convert_open_clip_checkpoint(
            model, checkpoint, prefix="conditioner.embedders.1.model."
        )
    elif convert.is_open_clip_model(checkpoint):  # SD 2.x
        state = convert.convert_open_clip_checkpoint(
            model, checkpoint, prefix="cond_stage_model.model."
        )
    else:  # SD 1.x and the first SDXL encoder
        state = convert.convert_ldm_clip_checkpoint(checkpoint)
    if not hasattr(model, "text_model"):  # transformers flattened CLIPTextModel in 5.x
        state = {key.removeprefix("text_model."): value for key, value in state.items()}
    return state


def _rebuild_position_ids(model: Any) -> None:
    """CLIP's ``position_ids`` is a non-persistent buffer (never in a file): make it on
    the device of the weights, as its constructor would."""
    for module in model.modules():
        buffer = module._buffers.get("position_ids")
        if buffer is not None and buffer.is_meta:
            weight = next(t for t in model.parameters() if not t.is_meta)
            module._buffers["position_ids"] = torch.arange(
                buffer.shape[-1], device=weight.device
            ).expand(buffer.shape)


def _tensors(model: Any) -> list[tuple[str, torch.Tensor]]:
    return [*model.named_parameters(), *model.named_buffers()]
