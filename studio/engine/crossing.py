"""Crossing two runs at a step: the slerp of their latents, re-noised by a dose.

A crossed child starts after step k from ``cross_latents`` of its parents' checkpoints
at k, so it inherits the composition both had reached. The latent after step k is
``a·x0 + s·ε`` at the scheduler's noise level (a, s) for step k+1 (``a = 1, s = σ`` for
the sigma-space Euler samplers, ``a = α, s = σ`` in VP space for the others). The
re-noise replaces part of that ε only, at that scale:

    x_mix  = c₁·x₁ + c₂·x₂                 (the slerp of the two latents)
    x0_mix = c₁·x0₁ + c₂·x0₂               (the same coefficients on their x0 predictions)
    ε_mix  = (x_mix − a·x0_mix) / s
    x      = a·x0_mix + s·(sqrt(1 − d²)·ε_mix + d·ε_new)

so a dose d leaves the signal the parents agreed on and gives the noise left at step k
a fraction d of fresh noise (d = 0: exactly the slerp). The child's scheduler starts
fresh at step k+1 (no multistep history from either parent, as an image-to-image run
starting mid-schedule), so the cross treats both parents alike.
"""

from __future__ import annotations

import math

import torch

from studio.engine import noise
from studio.engine.checkpoint import Checkpoint
from studio.engine.recipe import CrossPoint


def cross_latents(
    first: Checkpoint, second: Checkpoint, point: CrossPoint, level: tuple[float, float]
) -> torch.Tensor:
    """The child's latent after step ``point.step_index`` (see the module docstring)."""
    (_, w1), (_, w2) = point.parents
    strength = w2 / (w1 + w2)
    x1, x2 = first.latent.double(), second.latent.double()
    c1, c2 = noise.slerp_weights(strength, x1, x2)
    shape = tuple(x1.shape)
    mixed = (c1 * x1.reshape(shape[0], -1) + c2 * x2.reshape(shape[0], -1)).reshape(shape)
    a, s = level
    if point.dose <= 0.0 or s <= 0.0:
        return mixed.to(torch.float32)
    x0_1 = first.x0_pred.double().reshape(shape[0], -1)
    x0_2 = second.x0_pred.double().reshape(shape[0], -1)
    x0_mix = (c1 * x0_1 + c2 * x0_2).reshape(shape)
    current = (mixed - a * x0_mix) / s
    fresh = noise.seeded_noise(point.seed, shape).double()
    renoised = math.sqrt(1.0 - point.dose**2) * current + point.dose * fresh
    return (a * x0_mix + s * renoised).to(torch.float32)
