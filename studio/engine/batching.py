"""Which recipes can share a UNet batch, and the batch each one records; no torch.

A batch gives other low bits than a lone run, so a recipe records the ``batch`` its
trajectory was computed in and a lone run pads to it (see ``Sampler.run_batch``). The
CLI's brood and grid and the window's broods, grids and searches set it here, the same
way, and send recipes of one :func:`batch_key` together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from studio.engine.init_pixels import start_index
from studio.engine.recipe import Recipe

DEFAULT_BATCH = 8


def batch_key(recipe: Recipe) -> tuple[Any, ...]:
    """What recipes of one UNet batch share (the batch size included)."""
    first = start_index(recipe.steps, recipe.strength) if recipe.init_image else 0
    return (*_shape_key(recipe), recipe.batch, first)


def _shape_key(recipe: Recipe) -> tuple[Any, ...]:
    return (
        recipe.model,
        recipe.model_config,
        recipe.steps,
        recipe.sampler,
        recipe.width,
        recipe.height,
        recipe.guidance != 1.0,
    )


def can_batch(recipe: Recipe) -> bool:
    """A branch or a cross runs alone, from its parents' checkpoints."""
    return not recipe.lineage and recipe.cross is None


def with_batches(recipes: Sequence[Recipe], batch: int) -> list[Recipe]:
    """``recipes`` with each one's ``batch`` set: ``batch``, or the number of recipes that
    could share its UNet call when that is smaller (1 for a branch or a cross)."""
    counts: dict[tuple[Any, ...], int] = {}
    for recipe in recipes:
        if can_batch(recipe):
            counts[_shape_key(recipe)] = counts.get(_shape_key(recipe), 0) + 1
    return [
        r.with_changes(batch=min(batch, counts[_shape_key(r)]) if can_batch(r) else 1)
        for r in recipes
    ]


def batch_groups(recipes: Sequence[Recipe]) -> list[list[int]]:
    """The indices of ``recipes`` in runs of one UNet batch each: recipes of one key in
    their order, ``batch`` at a time; a recipe of batch 1 (or a branch, a cross) alone."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, recipe in enumerate(recipes):
        batched = recipe.batch > 1 and can_batch(recipe)
        groups.setdefault(batch_key(recipe) if batched else (index,), []).append(index)
    runs = []
    for members in groups.values():
        size = recipes[members[0]].batch if len(members) > 1 else 1
        runs += [members[start : start + size] for start in range(0, len(members), size)]
    return runs
