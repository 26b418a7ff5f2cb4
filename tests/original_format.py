"""Write a diffusers SD 1.x folder as one original-format (CompVis key names) .safetensors file.

The inverse of diffusers' single-file converters for the SD 1.x layout (the
mapping of diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py),
for any number of levels and layers per block, so a tiny model built in code
can be converted in a test. ``build_tiny_sd1_layout`` builds such a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def build_tiny_sd1_layout(folder: Path, seed: int = 0) -> Path:
    """A tiny folder with SD 1.x's block layout (4 levels, 2 layers, attention in the
    first three), small enough for a test; text encoder and tokenizer as the tiny model."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from tests.tiny_models import build_tiny_pipeline

    build_tiny_pipeline(folder, seed=seed)
    torch.manual_seed(seed + 1)
    UNet2DConditionModel(
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    ).save_pretrained(folder / "unet", safe_serialization=True)
    AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        norm_num_groups=4,
        sample_size=64,
    ).save_pretrained(folder / "vae", safe_serialization=True)
    return folder


def write_original_single_file(folder: Path, out: Path) -> Path:
    """``folder``'s UNet, VAE and text encoder under the original key names in ``out``."""
    from safetensors.torch import load_file, save_file

    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    state: dict[str, torch.Tensor] = {}
    unet = load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    for key, value in _unet_names(unet, unet_config).items():
        state["model.diffusion_model." + key] = value
    vae = load_file(str(folder / "vae" / "diffusion_pytorch_model.safetensors"))
    for key, value in _vae_names(vae).items():
        state["first_stage_model." + key] = value
    for key, value in load_file(str(folder / "text_encoder" / "model.safetensors")).items():
        key = key if key.startswith("text_model.") else "text_model." + key
        state["cond_stage_model.transformer." + key] = value
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out


def _unet_names(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    layers = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    prefixes = [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
        ("mid_block.attentions.0.", "middle_block.1."),
        ("mid_block.resnets.0.", "middle_block.0."),
        ("mid_block.resnets.1.", "middle_block.2."),
    ]
    for i in range(levels):
        for j in range(layers):
            block = (layers + 1) * i + j + 1
            prefixes.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{block}.0."))
            prefixes.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{block}.1."))
        if i < levels - 1:
            prefixes.append(
                (
                    f"down_blocks.{i}.downsamplers.0.conv.",
                    f"input_blocks.{(layers + 1) * (i + 1)}.0.op.",
                )
            )
        up_has_attention = config["up_block_types"][i].startswith("CrossAttn")
        for j in range(layers + 1):
            block = (layers + 1) * i + j
            prefixes.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{block}.0."))
            prefixes.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{block}.1."))
        if i < levels - 1:
            last = (layers + 1) * i + layers
            prefixes.append(
                (
                    f"up_blocks.{i}.upsamplers.0.",
                    f"output_blocks.{last}.{2 if up_has_attention else 1}.",
                )
            )
    resnet = [
        ("norm1.", "in_layers.0."),
        ("conv1.", "in_layers.2."),
        ("norm2.", "out_layers.0."),
        ("conv2.", "out_layers.3."),
        ("time_emb_proj.", "emb_layers.1."),
        ("conv_shortcut.", "skip_connection."),
    ]
    out = {}
    for key, value in state.items():
        new = key
        for ours, theirs in prefixes:
            if key.startswith(ours):
                rest = key[len(ours) :]
                if ".resnets." in ours:
                    for a, b in resnet:
                        if rest.startswith(a):
                            rest = b + rest[len(a) :]
                new = theirs + rest
                break
        else:
            raise AssertionError(f"no original name for {key}")
        out[new] = value
    return out


def _vae_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        new = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
        for i in range(2):
            new = new.replace(f"mid_block.resnets.{i}.", f"mid.block_{i + 1}.")
        parts = new.split(".")
        if parts[1] == "down_blocks":
            kind = "block" if parts[3] == "resnets" else "downsample"
            index = [parts[4]] if kind == "block" else []
            new = ".".join([parts[0], "down", parts[2], kind, *index, *parts[5:]])
        elif parts[1] == "up_blocks":
            level = str(3 - int(parts[2]))
            kind = "block" if parts[3] == "resnets" else "upsample"
            index = [parts[4]] if kind == "block" else []
            new = ".".join([parts[0], "up", level, kind, *index, *parts[5:]])
        if ".attn_1." in new:
            for a, b in (
                ("group_norm.", "norm."),
                ("to_q.", "q."),
                ("to_k.", "k."),
                ("to_v.", "v."),
                ("to_out.0.", "proj_out."),
            ):
                new = new.replace("attn_1." + a, "attn_1." + b)
            if new.endswith("weight") and value.ndim == 2:
                value = value[:, :, None, None]
        out[new] = value
    return out
