"""Seeded noise: the start noise, per-step noise, and A1111's variation slerp.

All noise is drawn on the CPU from a generator seeded for exactly one purpose,
then moved to the device. The same seed therefore gives the same noise on any
device, and per-step noise depends only on (seed, step), never on how far a
generator has run: that is what makes ancestral and SDE samplers resumable.
"""

from __future__ import annotations

import numpy as np
import torch

_STEP_NOISE = 1
_RENOISE = 2


def seeded_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Gaussian noise from a CPU generator seeded with ``seed`` (as A1111 does with its CPU RNG)."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def derived_seed(seed: int, purpose: int, index: int) -> int:
    """A 64-bit seed that depends only on (seed, purpose, index)."""
    words = np.random.SeedSequence(entropy=int(seed), spawn_key=(purpose, index)).generate_state(
        2, np.uint32
    )
    return int(words[0]) | (int(words[1]) << 32)


def step_generator(seed: int, index: int) -> torch.Generator:
    """A fresh CPU generator for the noise an ancestral sampler draws at step ``index``."""
    return torch.Generator(device="cpu").manual_seed(derived_seed(seed, _STEP_NOISE, index))


def step_noise(seed: int, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The noise an SDE sampler adds at step ``index``."""
    return torch.randn(shape, generator=step_generator(seed, index), dtype=torch.float32)


def renoise_noise(seed: int, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Fresh noise used when a branch re-noises its start latent at step ``index``."""
    return seeded_noise(derived_seed(seed, _RENOISE, index), shape)


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from ``low`` (strength 0) to ``high`` (strength 1), as A1111 does.

    Falls back to linear interpolation when the two are nearly parallel.
    """
    low_flat = low.reshape(low.shape[0], -1).double()
    high_flat = high.reshape(high.shape[0], -1).double()
    low_norm = low_flat / low_flat.norm(dim=1, keepdim=True)
    high_norm = high_flat / high_flat.norm(dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if float(dot.mean()) > 0.9995:
        mixed = low_flat * (1.0 - strength) + high_flat * strength
    else:
        omega = torch.acos(dot.clamp(-1.0, 1.0))
        so = torch.sin(omega)
        mixed = (torch.sin((1.0 - strength) * omega) / so).unsqueeze(1) * low_flat + (
            torch.sin(strength * omega) / so
        ).unsqueeze(1) * high_flat
    return mixed.reshape(low.shape).to(low.dtype)


def start_noise(
    seed: int,
    shape: tuple[int, ...],
    variation_seed: int | None = None,
    variation_strength: float = 0.0,
) -> torch.Tensor:
    """The x_T noise of a recipe: the seed's noise, slerped toward the variation seed's noise."""
    noise = seeded_noise(seed, shape)
    if variation_seed is not None and variation_strength > 0.0:
        noise = slerp(variation_strength, noise, seeded_noise(variation_seed, shape))
    return noise
