"""Latent → RGB: the fast linear preview every step, and the full VAE decode.

The fast preview is a per-model 4×3 matrix plus bias applied to each latent
pixel, so it costs a tiny fraction of a denoising step. The full decode runs
the VAE; a NaN there (fp16 VAEs do this) is redone in fp32, and an image that is
still non-finite or entirely black is refused rather than shown.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from studio.engine.errors import DecodeError


def linear_preview(latent: torch.Tensor, factors: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """uint8 H×W×3 at latent resolution from a (1, C, H, W) latent."""
    pixels = torch.einsum("chw,cr->hwr", latent[0].float(), factors.to(latent.device)) + bias.to(
        latent.device
    )
    pixels = ((pixels + 1.0) * 127.5).clamp(0, 255)
    return torch.nan_to_num(pixels).to(torch.uint8).cpu().numpy()


def decode(vae: Any, latent: torch.Tensor) -> np.ndarray:
    """Full VAE decode of a (1, C, H, W) latent to uint8 H×W×3."""
    image = _decode_once(vae, latent)
    if not torch.isfinite(image).all() and vae.dtype != torch.float32:
        original = vae.dtype
        vae.to(torch.float32)
        try:
            image = _decode_once(vae, latent.float())
        finally:
            vae.to(original)
    if not torch.isfinite(image).all():
        raise DecodeError("The decoded image contains NaN values; it was not kept.")
    pixels = (
        ((image[0].float().permute(1, 2, 0) + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)
    )
    array = pixels.cpu().numpy()
    if not array.any():
        raise DecodeError("The decoded image is entirely black; it was not kept.")
    return array


@torch.no_grad()
def _decode_once(vae: Any, latent: torch.Tensor) -> torch.Tensor:
    config = vae.config
    scaled = latent.to(vae.device, vae.dtype) / config.scaling_factor
    shift = getattr(config, "shift_factor", None)
    if shift:
        scaled = scaled + shift
    return vae.decode(scaled).sample
