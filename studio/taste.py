"""Ranking candidates by taste: the explore ↔ exploit mix, the Pareto front, novelty in context.

Plain numpy on scores already computed (:mod:`studio.engine.scoring` makes them on
the worker), so the session and the window can sort, mix and re-rank without torch.
Higher is better on both axes: fidelity (agrees with the prompt) and novelty
(surprising to the model, or unlike the other candidates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def percentile_ranks(values: Sequence[float]) -> np.ndarray:
    """Each value's rank among ``values`` scaled to [0, 1] (ties share their mean rank).

    Ranks, not raw values, so one outlier (random pixels are enormously novel) does
    not squash everyone else's differences."""
    array = np.asarray(values, dtype=np.float64)
    count = len(array)
    if count == 0:
        return array
    if count == 1:
        return np.full(1, 0.5)
    order = np.argsort(array, kind="stable")
    ranks = np.empty(count)
    ranks[order] = np.arange(count, dtype=np.float64)
    for value in np.unique(array):
        tied = array == value
        ranks[tied] = ranks[tied].mean()
    return ranks / (count - 1)


def combined_scores(
    fidelity: Sequence[float], novelty: Sequence[float], explore: float
) -> np.ndarray:
    """The slider's score: ``(1 − explore) · rank(fidelity) + explore · rank(novelty)``.

    ``explore`` 0 is pure exploit (most faithful first), 1 pure explore (most novel
    first); values between walk the line. Ranks are within the candidates given."""
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore must be from 0 to 1, not {explore}.")
    if len(fidelity) != len(novelty):
        raise ValueError("fidelity and novelty need one value per candidate each.")
    return (1.0 - explore) * percentile_ranks(fidelity) + explore * percentile_ranks(novelty)


def ranking(fidelity: Sequence[float], novelty: Sequence[float], explore: float) -> list[int]:
    """Candidate indices, best first by :func:`combined_scores` (ties keep their order)."""
    scores = combined_scores(fidelity, novelty, explore)
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def pareto_front(fidelity: Sequence[float], novelty: Sequence[float]) -> list[int]:
    """Indices of the candidates no other beats on both axes, by ascending novelty."""
    f = np.asarray(fidelity, dtype=np.float64)
    n = np.asarray(novelty, dtype=np.float64)
    front = [
        i
        for i in range(len(f))
        if not np.any((f >= f[i]) & (n >= n[i]) & ((f > f[i]) | (n > n[i])))
    ]
    return sorted(front, key=lambda i: (n[i], -f[i]))


# ---- novelty in context ------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ContextNovelty:
    """Novelty relative to a set of candidates (see :func:`context_novelty`)."""

    vendi: float
    contributions: np.ndarray
    nearest: np.ndarray


def vendi_score(features: np.ndarray) -> float:
    """``exp(−Σ λ log λ)`` over the eigenvalues of K/n, K the cosine-similarity kernel
    (Friedman & Dieng 2022): the effective number of distinct rows."""
    if len(features) == 0:
        return 0.0
    unit = _unit_rows(features)
    eigenvalues = np.linalg.eigvalsh(unit @ unit.T / len(unit))
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))


def context_novelty(features: np.ndarray | Sequence[np.ndarray]) -> ContextNovelty:
    """How much each candidate adds to a set, from their feature vectors (rows).

    ``contributions[i]`` is the Vendi score of the set minus that of the set
    without ``i`` (about 1 for a candidate unlike all others, about 0 for a
    duplicate); ``nearest[i]`` is the cosine distance to its nearest other
    candidate (NaN when it is alone). Either works against any context, e.g. a
    brood plus the project's earlier results: pass all their features and read the
    rows wanted."""
    rows = list(features)
    matrix = np.stack(rows).astype(np.float64) if rows else np.zeros((0, 1))
    count = len(matrix)
    total = vendi_score(matrix)
    contributions = np.zeros(count)
    nearest = np.full(count, np.nan)
    if count < 2:
        return ContextNovelty(total, contributions, nearest)
    for i in range(count):
        contributions[i] = total - vendi_score(np.delete(matrix, i, axis=0))
    unit = _unit_rows(matrix)
    distance = 1.0 - unit @ unit.T
    np.fill_diagonal(distance, np.inf)
    nearest = distance.min(axis=1)
    return ContextNovelty(total, contributions, nearest)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)
