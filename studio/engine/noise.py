"""Seeded noise: the start noise, per-step noise, A1111's variation slerp and the noise genome.

All noise is drawn on the CPU from a generator seeded for exactly one purpose,
then moved to the device. The same seed therefore gives the same noise on any
device, and per-step noise depends only on (seed, step), never on how far a
generator has run: that is what makes ancestral and SDE samplers resumable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

# Re-exported: callers draw noise and derive its seeds through this module.
from studio.engine.seeds import RENOISE, STEP_NOISE, derived_seed, merged_parents, mutation_seed

__all__ = [
    "derived_seed",
    "genome_mix",
    "merged_parents",
    "mutate",
    "mutation_seed",
    "renoise_noise",
    "seeded_noise",
    "slerp",
    "slerp_weights",
    "start_noise",
    "step_generator",
    "step_noise",
]


def seeded_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Gaussian noise from a CPU generator seeded with ``seed`` (as A1111 does with its CPU RNG)."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def step_generator(seed: int, index: int) -> torch.Generator:
    """A fresh CPU generator for the noise an ancestral sampler draws at step ``index``."""
    return torch.Generator(device="cpu").manual_seed(derived_seed(seed, STEP_NOISE, index))


def step_noise(seed: int, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The noise an SDE sampler adds at step ``index``."""
    return torch.randn(shape, generator=step_generator(seed, index), dtype=torch.float32)


def renoise_noise(seed: int, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Fresh noise used when a branch re-noises its start latent at step ``index``."""
    return seeded_noise(derived_seed(seed, RENOISE, index), shape)


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from ``low`` (strength 0) to ``high`` (strength 1), as A1111 does.

    Falls back to linear interpolation when the two are nearly parallel.
    """
    low_flat = low.reshape(low.shape[0], -1).double()
    high_flat = high.reshape(high.shape[0], -1).double()
    c_low, c_high = slerp_weights(strength, low, high)
    mixed = c_low * low_flat + c_high * high_flat
    return mixed.reshape(low.shape).to(low.dtype)


def slerp_weights(
    strength: float, low: torch.Tensor, high: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The coefficients (float64, one row per batch item) :func:`slerp` gives ``low`` and
    ``high``, so the same combination can be applied to other tensors (a cross applies a
    latent pair's weights to their x0 predictions too)."""
    low_flat = low.reshape(low.shape[0], -1).double()
    high_flat = high.reshape(high.shape[0], -1).double()
    low_norm = low_flat / low_flat.norm(dim=1, keepdim=True)
    high_norm = high_flat / high_flat.norm(dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    rows = low_flat.shape[0]
    if float(dot.mean()) > 0.9995:
        c_low = torch.full((rows, 1), 1.0 - strength, dtype=torch.float64)
        c_high = torch.full((rows, 1), float(strength), dtype=torch.float64)
        return c_low, c_high
    omega = torch.acos(dot.clamp(-1.0, 1.0))
    so = torch.sin(omega)
    return (
        (torch.sin((1.0 - strength) * omega) / so).unsqueeze(1),
        (torch.sin(strength * omega) / so).unsqueeze(1),
    )


def genome_mix(parents: Sequence[tuple[int, float]], shape: tuple[int, ...]) -> torch.Tensor:
    """``Σ wᵢ·εᵢ / sqrt(Σ wᵢ²)`` over the parents' seeded noises: exactly N(0, I) for distinct seeds.

    One parent (at any weight) is that seed's noise bit for bit."""
    merged = merged_parents(parents)
    if len(merged) == 1:
        return seeded_noise(merged[0][0], shape)
    norm = math.sqrt(sum(weight * weight for _, weight in merged))
    mixed = torch.zeros(shape, dtype=torch.float64)
    for seed, weight in merged:
        mixed += (weight / norm) * seeded_noise(seed, shape).double()
    return mixed.to(torch.float32)


def mutate(noise: torch.Tensor, seed: int, dose: float) -> torch.Tensor:
    """``sqrt(1 − d²)·noise + d·ε`` with ε the noise of ``seed``; a dose of 0 returns ``noise`` itself."""
    if dose <= 0.0:
        return noise
    fresh = seeded_noise(seed, tuple(noise.shape))
    if dose >= 1.0:
        return fresh
    mixed = math.sqrt(1.0 - dose * dose) * noise.double() + dose * fresh.double()
    return mixed.to(torch.float32)


def start_noise(
    seed: int,
    shape: tuple[int, ...],
    variation_seed: int | None = None,
    variation_strength: float = 0.0,
    parents: Sequence[tuple[int, float]] = (),
    mutation_seed: int | None = None,
    mutation_dose: float = 0.0,
) -> torch.Tensor:
    """The x_T noise of a recipe.

    The base is the parents' mix when there are parents, else the seed's noise; it is
    slerped toward the variation seed's noise (A1111's variation, kept exactly as it
    was), then mutated by ``mutation_dose`` of ``mutation_seed``'s noise."""
    noise = genome_mix(parents, shape) if parents else seeded_noise(seed, shape)
    if variation_seed is not None and variation_strength > 0.0:
        noise = slerp(variation_strength, noise, seeded_noise(variation_seed, shape))
    if mutation_seed is not None:
        noise = mutate(noise, mutation_seed, mutation_dose)
    return noise
