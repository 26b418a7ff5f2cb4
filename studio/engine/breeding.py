"""Breeding: children whose start noise mixes their parents' noises, plus a mutation.

A child's noise genome is a list of (seed, weight) pairs over plain seeded noises
(see ``noise.genome_mix``). Crossing bred versions expands each parent's genome
into those base seeds first, so parents that share ancestry share seeds, and
merging the shared seeds is the covariance-normalised mix with the covariance
known exactly: the child stays N(0, I) however its parents are related.

Parents with different prompts also cross their prompts (:func:`with_mixed_prompts`):
the child's ``prompt_mix`` weighs each parent's prompts by the parent's weight, a
mixed parent's by its own shares, so a grandchild's mix is linear in the base prompts.

Numbers only (no torch): the window's session plans its broods here too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from studio.engine import seeds
from studio.engine.recipe import (
    MAX_PROMPT_CHARS,
    CrossPoint,
    Recipe,
    RecipeError,
    check_crossable,
)

MAX_CHILDREN = 64
MIX_SEPARATOR = " × "
"""Joins the mixed prompts into the child's readable ``prompt``."""


def genome(recipe: Recipe) -> tuple[tuple[int, float], ...]:
    """The start noise of ``recipe`` as unit-norm weights over base seeds.

    Exact for parents and mutation; an A1111 variation (a slerp, whose weights depend on
    the angle between two actual noises) is taken at the right angle that independent
    noises nearly make."""
    if recipe.parents:
        merged = seeds.merged_parents(recipe.parents)
        norm = math.sqrt(sum(w * w for _, w in merged))
        weights = [(seed, w / norm) for seed, w in merged]
    else:
        weights = [(recipe.seed, 1.0)]
    if recipe.variation_seed is not None and recipe.variation_strength > 0.0:
        angle = recipe.variation_strength * math.pi / 2
        weights = [(s, w * math.cos(angle)) for s, w in weights]
        weights.append((recipe.variation_seed, math.sin(angle)))
    if recipe.mutation_seed is not None and recipe.mutation_dose > 0.0:
        keep = math.sqrt(1.0 - recipe.mutation_dose**2)
        weights = [(s, w * keep) for s, w in weights]
        weights.append((recipe.mutation_seed, recipe.mutation_dose))
    return tuple((s, w) for s, w in seeds.merged_parents(weights) if w > 0.0)


def cross(parents: Sequence[tuple[Recipe, float]]) -> tuple[tuple[int, float], ...]:
    """The genome of a child of ``parents`` ((recipe, weight) pairs), before its mutation."""
    if not parents:
        raise RecipeError("A cross needs at least one parent.")
    mixed: list[tuple[int, float]] = []
    for recipe, weight in parents:
        mixed += [(seed, weight * w) for seed, w in genome(recipe)]
    return tuple((s, w) for s, w in seeds.merged_parents(mixed) if w > 0.0)


def mixed_prompts(parents: Sequence[tuple[Recipe, float]]) -> tuple[tuple[str, float], ...]:
    """The prompts of ``parents`` ((recipe, weight) pairs), each weighed by its parent's
    weight times its share in that parent (``Recipe.prompt_weights``), repeats merged."""
    merged: dict[str, float] = {}
    for recipe, weight in parents:
        for text, share in recipe.prompt_weights():
            merged[text] = merged.get(text, 0.0) + weight * share
    return tuple(merged.items())


def with_mixed_prompts(recipe: Recipe, parents: Sequence[tuple[Recipe, float]]) -> Recipe:
    """``recipe`` conditioned on the mix of ``parents``' prompts: with the one prompt they
    all share as its plain prompt, or else with their ``prompt_mix`` and a ``prompt`` that
    names it ("a red fox × a blue owl", cut to the prompt's limit)."""
    mix = mixed_prompts(parents)
    if len(mix) == 1:
        return recipe.with_changes(prompt=mix[0][0], prompt_mix=())
    title = MIX_SEPARATOR.join(text for text, _ in mix)[:MAX_PROMPT_CHARS]
    return recipe.with_changes(prompt=title, prompt_mix=mix)


def brood(
    base: Recipe,
    parents: Sequence[tuple[int, float]],
    children: int,
    dose: float,
    brood_seed: int,
) -> list[Recipe]:
    """``children`` recipes: ``base`` with the parents' noise genome, each mutated by ``dose``
    of its own noise, whose seed depends only on (``brood_seed``, child index).

    The first parent's seed drives each child's per-step noise, as a one-parent child
    at dose 0 would be exactly that seed's image."""
    if not 1 <= children <= MAX_CHILDREN:
        raise RecipeError(f"A brood has from 1 to {MAX_CHILDREN} children.")
    if not parents:
        raise RecipeError("A brood needs at least one parent.")
    if not 0.0 <= dose <= 1.0:
        raise RecipeError("A brood's dose must be from 0 (every child the cross itself) to 1.")
    genome_pairs = tuple((int(s), float(w)) for s, w in parents)
    return [
        base.with_changes(
            parents=genome_pairs,
            seed=genome_pairs[0][0],
            mutation_seed=seeds.mutation_seed(brood_seed, index),
            mutation_dose=dose,
            lineage=(),
        )
        for index in range(children)
    ]


def brood_of(
    parents: Sequence[Recipe],
    children: int,
    dose: float,
    brood_seed: int,
    mix_prompts: bool = True,
) -> list[Recipe]:
    """A brood of bred versions: the equal-weight :func:`cross` of ``parents``' genomes,
    with the first parent's other settings (its lineage, variation and branch noise are
    folded into the genome or dropped, and the children run one at a time).

    ``mix_prompts``: the children's prompt is the equal-weight mix of the parents'
    prompts when those differ (:func:`with_mixed_prompts`); False keeps the first
    parent's."""
    if not parents:
        raise RecipeError("A brood needs at least one parent.")
    base = parents[0].with_changes(
        lineage=(),
        variation_seed=None,
        variation_strength=0.0,
        renoise_seed=None,
        renoise_strength=0.0,
        batch=1,
    )
    weighted = [(p, 1.0) for p in parents]
    if mix_prompts:
        base = with_mixed_prompts(base, weighted)
    return brood(base, cross(weighted), children, dose, brood_seed)


def owner_at(recipe: Recipe, step_index: int) -> Recipe:
    """The recipe (with its lineage) whose run computes step ``step_index`` of ``recipe``'s
    trajectory: ``recipe`` itself, or the ancestor a branch took that step from."""
    while recipe.lineage and recipe.branch_step >= step_index:
        recipe = recipe.parent
    return recipe


def cross_at(
    first: Recipe,
    second: Recipe,
    step_index: int,
    dose: float = 0.0,
    seed: int = 0,
    weights: tuple[float, float] = (1.0, 1.0),
    mix_prompts: bool = True,
) -> Recipe:
    """The child of ``first`` and ``second`` crossed after step ``step_index`` (0-based):
    the slerp of their latents there by ``weights``, re-noised by ``dose`` of ``seed``'s
    noise (see ``crossing``), continued with ``first``'s other settings.

    ``mix_prompts``: after the cross the child runs on the mix of the two parents' prompts
    by ``weights`` when those differ (:func:`with_mixed_prompts`); False keeps ``first``'s.

    Raises RecipeError unless both share model, size, steps and sampler."""
    parents = tuple(owner_at(r, step_index) for r in (first, second))
    child = parents[0].with_changes(
        lineage=(),
        cross=CrossPoint(
            ((parents[0], float(weights[0])), (parents[1], float(weights[1]))),
            int(step_index),
            int(seed),
            float(dose),
        ),
        parents=(),
        mutation_seed=None,
        mutation_dose=0.0,
        variation_seed=None,
        variation_strength=0.0,
        renoise_seed=None,
        renoise_strength=0.0,
        batch=1,
    )
    check_crossable(child, parents[1], step_index)
    if mix_prompts:
        child = with_mixed_prompts(child, child.cross.parents)
    return child
