"""How much memory a size needs on a model, and how much the device has.

:class:`SizeBudget` is plain numbers (it crosses the job protocol inside
``ModelLoaded``); :func:`budget_for` fills it from a loaded model on the worker
thread. The estimate is linear in the image's pixels: the UNet's skip
activations and working tensors for the CFG batch, or the VAE decoder's
full-resolution activations, whichever is larger, plus the weights. It assumes
memory-efficient attention (PyTorch's scaled-dot-product kernels), so it is a
floor, not a promise: a size it refuses cannot run here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

FAR_FROM_NATIVE = 2.0
"""A side more than this many times the native size (or less than its inverse) is warned about."""


@dataclass(frozen=True)
class SizeBudget:
    """What a size costs on one loaded model. Zeros mean "unknown": nothing is refused."""

    native_size: int = 0
    fixed_bytes: int = 0
    bytes_per_pixel: float = 0.0
    device_bytes: int = 0

    def estimate(self, width: int, height: int) -> int:
        return int(self.fixed_bytes + self.bytes_per_pixel * width * height)

    def warning(self, width: int, height: int) -> str | None:
        """A sentence when the size is far from the model's native size, else None."""
        native = self.native_size
        if native <= 0:
            return None
        ratio = max(width, height, native) / max(1, min(width, height, native))
        if ratio <= FAR_FROM_NATIVE:
            return None
        return (
            f"This model was trained at {native}×{native}; {width}×{height} is far from it, "
            "so expect repeated or broken shapes and a slow run."
        )

    def refusal(self, width: int, height: int) -> str | None:
        """A sentence when the size needs more memory than the device has, else None."""
        if self.device_bytes <= 0 or self.bytes_per_pixel <= 0:
            return None
        needed = self.estimate(width, height)
        if needed <= self.device_bytes:
            return None
        return (
            f"{width}×{height} needs about {_gigabytes(needed)} of memory and this device has "
            f"{_gigabytes(self.device_bytes)} free; choose a smaller size."
        )


def budget_for(model: Any) -> SizeBudget:
    """The budget of a loaded model (``studio.engine.models.LoadedModel``) on its device."""
    dtype_bytes = _dtype_bytes(model.dtype)
    factor = int(model.size_factor)
    unet = model.unet.config
    channels = list(unet.block_out_channels)
    layers = int(unet.layers_per_block) if isinstance(unet.layers_per_block, int) else 2
    # Skips kept for the up path at each level (a level's side shrinks by 2 per level),
    # and a few working tensors at full latent resolution; two for the CFG batch.
    skips = sum(c * (layers + 1) / 4**i for i, c in enumerate(channels))
    unet_per_latent_pixel = 2 * (skips + 6 * max(channels)) * dtype_bytes
    unet_per_pixel = unet_per_latent_pixel / (factor * factor)
    vae_channels = list(model.vae.config.block_out_channels)
    vae_per_pixel = 4 * max(vae_channels) * dtype_bytes
    weights = sum(
        p.numel() * p.element_size()
        for module in (model.unet, model.vae, model.text_encoder, model.text_encoder_2)
        if module is not None
        for p in module.parameters()
    )
    return SizeBudget(
        native_size=int(model.native_size),
        fixed_bytes=int(weights),
        bytes_per_pixel=float(max(unet_per_pixel, vae_per_pixel)),
        device_bytes=available_bytes(model.device),
    )


def available_bytes(device: Any) -> int:
    """Free memory on ``device`` in bytes: CUDA's free memory, else the OS's available RAM."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return _available_ram()


def _available_ram() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0  # unknown (macOS, Windows): nothing is refused


def _dtype_bytes(dtype: Any) -> int:
    return int(getattr(dtype, "itemsize", 4) or 4)


def _gigabytes(count: int) -> str:
    value = count / 2**30
    return f"{value:.1f} GB" if value < 100 else f"{value:,.0f} GB"
