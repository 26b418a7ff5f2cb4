"""Tiny random components shaped like the bundled model, built in code for fast tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from studio.training.components import (
    TINY,
    ModelShape,
    build_scheduler,
    build_text_encoder,
    build_unet,
    build_vae,
)
from studio.training.vocab import load_tokenizer, write_tokenizer


@dataclass
class TinyComponents:
    """A tokenizer, text encoder, UNet, VAE and scheduler with random (seeded) weights."""

    tokenizer: Any
    text_encoder: Any
    unet: Any
    vae: Any
    scheduler: Any
    tokenizer_dir: Path


def build_tiny_components(
    tokenizer_dir: str | Path, seed: int = 0, shape: ModelShape = TINY
) -> TinyComponents:
    """Build tiny SD-shaped components; the tokenizer files (our vocabulary) go to ``tokenizer_dir``."""
    tokenizer_dir = write_tokenizer(tokenizer_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    torch.manual_seed(seed)
    text_encoder = build_text_encoder(
        shape,
        len(tokenizer),
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    ).eval()
    unet = build_unet(shape).eval()
    vae = build_vae(shape).eval()
    return TinyComponents(
        tokenizer, text_encoder, unet, vae, build_scheduler(), Path(tokenizer_dir)
    )


def write_tiny_model(folder: str | Path, seed: int = 0, shape: ModelShape = TINY) -> Path:
    """Write a tiny random model in the bundled model's diffusers layout (with preview.json)."""
    from studio.training.train import export  # local: train imports heavier modules

    folder = Path(folder)
    parts = build_tiny_components(folder / "tokenizer", seed=seed, shape=shape)
    channels = shape.latent_channels
    preview = {
        "latent_rgb_factors": [
            [0.3, 0.3, 0.3] if i == 0 else [0.1 * i, -0.1, 0.05] for i in range(channels)
        ],
        "latent_rgb_bias": [0.0, 0.0, 0.0],
    }
    export(folder, parts.tokenizer_dir, parts.text_encoder, parts.unet, parts.vae, preview)
    return folder
