"""Seeds derived from seeds, and a genome's repeated seeds merged: numbers only, no tensors.

Kept apart from ``noise`` (which draws the tensors) so that planning a brood, in the
window's session as in the CLI, needs neither torch nor a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STEP_NOISE = 1
RENOISE = 2
MUTATION = 3


def derived_seed(seed: int, purpose: int, index: int) -> int:
    """A 64-bit seed that depends only on (seed, purpose, index)."""
    words = np.random.SeedSequence(entropy=int(seed), spawn_key=(purpose, index)).generate_state(
        2, np.uint32
    )
    return int(words[0]) | (int(words[1]) << 32)


def mutation_seed(brood_seed: int, child: int) -> int:
    """The mutation seed of child ``child`` of a brood: a function of (brood seed, index) only."""
    return derived_seed(brood_seed, MUTATION, child)


def merged_parents(parents: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """The parents with one entry per seed (weights of a repeated seed summed), in first-seen order.

    A repeated seed is shared ancestry: its noises are the same, not independent, and
    summing their weights is the covariance-normalised mix with C known exactly."""
    merged: dict[int, float] = {}
    for seed, weight in parents:
        merged[int(seed)] = merged.get(int(seed), 0.0) + float(weight)
    return list(merged.items())
