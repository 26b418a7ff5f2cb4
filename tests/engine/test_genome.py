"""The noise genome: parents' mix, mutation, temperature and crossing bred versions."""

from __future__ import annotations

import torch

from studio.engine import noise
from studio.engine.breeding import brood, cross, genome
from studio.engine.recipe import Recipe

LARGE = (1, 4, 256, 256)


def _variance(z: torch.Tensor) -> float:
    return float(z.double().var())


def test_a_single_parent_is_exactly_its_seed_at_any_weight():
    expected = noise.seeded_noise(11, (1, 4, 8, 8))
    for weight in (1.0, 0.5, 3.0):
        assert torch.equal(noise.start_noise(0, (1, 4, 8, 8), parents=((11, weight),)), expected)


def test_a_dose_of_zero_changes_nothing():
    mixed = noise.start_noise(0, (1, 4, 8, 8), parents=((11, 1.0), (22, 2.0)))
    same = noise.start_noise(
        0, (1, 4, 8, 8), parents=((11, 1.0), (22, 2.0)), mutation_seed=5, mutation_dose=0.0
    )
    assert torch.equal(same, mixed)
    assert not torch.equal(
        noise.start_noise(
            0, (1, 4, 8, 8), parents=((11, 1.0), (22, 2.0)), mutation_seed=5, mutation_dose=0.1
        ),
        mixed,
    )


def test_mixed_and_mutated_noise_has_unit_variance_where_lerp_does_not():
    parents = ((11, 1.0), (22, 1.0), (33, 0.5))
    mixed = noise.start_noise(0, LARGE, parents=parents)
    mutated = noise.start_noise(0, LARGE, parents=parents, mutation_seed=5, mutation_dose=0.3)
    for z in (mixed, mutated):
        assert abs(_variance(z) - 1.0) < 0.02 and abs(float(z.double().mean())) < 0.01
    lerp = 0.5 * noise.seeded_noise(11, LARGE) + 0.5 * noise.seeded_noise(22, LARGE)
    assert abs(_variance(lerp) - 0.5) < 0.02  # the washed-out mix normalising avoids


def test_shared_ancestry_is_normalised_by_its_exact_covariance():
    first = Recipe("x", parents=((11, 1.0), (22, 1.0)))
    second = Recipe("x", parents=((11, 1.0), (33, 1.0)))
    child = cross([(first, 1.0), (second, 1.0)])
    assert dict(child)[11] > dict(child)[22]  # the shared grandparent counts once, twice weighted
    assert abs(_variance(noise.genome_mix(child, LARGE)) - 1.0) < 0.02
    # treating the parents as independent noises would overshoot: 1 + C_12 = 1.5
    naive = (
        noise.genome_mix(first.parents, LARGE) + noise.genome_mix(second.parents, LARGE)
    ) / 2**0.5
    assert abs(_variance(naive) - 1.5) < 0.03


def test_a_genome_is_unit_norm_and_keeps_the_mutation():
    recipe = Recipe("x", parents=((11, 1.0), (22, 3.0)), mutation_seed=5, mutation_dose=0.2)
    weights = dict(genome(recipe))
    assert abs(sum(w * w for w in weights.values()) - 1.0) < 1e-12 and weights[5] == 0.2
    assert genome(Recipe("x", seed=7)) == ((7, 1.0),)


def test_a_brood_has_distinct_reproducible_mutation_seeds():
    children = brood(Recipe("x"), ((11, 1.0), (22, 1.0)), 6, 0.2, brood_seed=11)
    seeds = [c.mutation_seed for c in children]
    assert len(set(seeds)) == 6 and seeds == [
        c.mutation_seed for c in brood(Recipe("x"), ((11, 1.0),), 6, 0.2, 11)
    ]
    assert all(c.seed == 11 and c.mutation_dose == 0.2 for c in children)


def test_genome_and_temperature_recipes_round_trip_and_old_json_is_unchanged():
    recipe = Recipe(
        "x", parents=((11, 1.0), (22, 0.5)), mutation_seed=5, mutation_dose=0.1, temperature=0.8
    )
    assert Recipe.from_json(recipe.to_json()) == recipe
    assert Recipe.from_parameters(recipe.to_parameters()) == recipe
    text = Recipe("x").to_json()
    assert all(key not in text for key in ("parents", "mutation", "temperature", "lineage"))


def test_the_single_parent_recipe_renders_that_seeds_image(tiny_sampler):
    plain = Recipe("a red fox", seed=11, steps=4, width=16, height=16, sampler="Euler a")
    bred = plain.with_changes(parents=((11, 1.0),), mutation_seed=5, mutation_dose=0.0)
    assert torch.equal(
        list(tiny_sampler.run(bred))[-1].latent, list(tiny_sampler.run(plain))[-1].latent
    )


def test_temperature_changes_the_run_and_resumes_exactly(tiny_sampler):
    for sampler in ("Euler a", "DPM++ 2M SDE", "DDIM"):
        base = Recipe("a red fox", seed=3, steps=5, width=16, height=16, sampler=sampler)
        warm = base.with_changes(temperature=1.3)
        steps = list(tiny_sampler.run(warm))
        assert not torch.equal(steps[-1].latent, list(tiny_sampler.run(base))[-1].latent), sampler
        resumed = list(tiny_sampler.run(warm, start=steps[1].checkpoint))
        assert torch.equal(resumed[-1].latent, steps[-1].latent), sampler
