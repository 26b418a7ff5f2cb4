"""Crossing two runs at a step: the recipe, its refusals, and the sampler replaying it."""

from __future__ import annotations

import json

import pytest
import torch

from studio.engine import noise
from studio.engine.breeding import cross_at
from studio.engine.checkpoint import Checkpoint
from studio.engine.recipe import Recipe, RecipeError

K = 2


def _parents(sampler: str = "Euler a") -> tuple[Recipe, Recipe]:
    first = Recipe("a red fox", seed=3, steps=6, width=16, height=16, sampler=sampler)
    return first, first.with_changes(prompt="a blue owl", seed=8, guidance=4.0)


def test_a_cross_round_trips_and_old_recipes_keep_their_text():
    first, second = _parents()
    old = first.to_json()
    assert "cross" not in json.loads(old)
    branch = second.with_changes(prompt="a green owl").branched_from(second, 1)
    child = cross_at(first, branch, K, dose=0.3, seed=77, weights=(1.0, 2.0))
    again = Recipe.from_json(child.to_json())
    assert again == child and again.cross.parents[1][0].lineage == branch.lineage
    assert first.to_json() == old
    notes: list[str] = []
    text = child.to_parameters()
    assert f"Cross: step {K + 1} of {first.short_hash()} and {branch.short_hash()}" in text
    Recipe.from_parameters(text, notes)
    assert "cross" in notes[-1]
    # a branch of the child keeps the cross in its lineage's first recipe
    grandchild = child.with_changes(guidance=2.0).branched_from(child, 4)
    assert grandchild.cross is None and grandchild.lineage[0].recipe.cross == child.cross
    assert Recipe.from_json(grandchild.to_json()) == grandchild
    grandchild.validate(1)


def test_a_cross_of_unlike_runs_is_refused_in_one_sentence():
    first, second = _parents()
    with pytest.raises(RecipeError, match="same model, size, steps and sampler"):
        cross_at(first, second.with_changes(steps=7), K)
    with pytest.raises(RecipeError, match="same model, size, steps and sampler"):
        cross_at(first, second.with_changes(sampler="DDIM"), K)
    with pytest.raises(RecipeError, match="leaving a step to run"):
        cross_at(first, second, 5).validate(1)
    with pytest.raises(RecipeError, match="dose"):
        cross_at(first, second, K, dose=1.5).validate(1)


def test_a_branch_parent_is_taken_from_the_run_that_computed_the_step():
    first, second = _parents()
    late = second.with_changes(prompt="a green owl").branched_from(second, 3)
    child = cross_at(first, late, K)
    assert child.cross.parents[1][0] == second  # step 2 of the branch is its parent's


def _checkpoint_at(sampler, recipe: Recipe, index: int) -> Checkpoint:
    for step in sampler.run(recipe):
        if step.index == index:
            return Checkpoint.from_bytes(step.checkpoint.to_bytes())
    raise AssertionError("the run did not reach the step")


def test_dose_zero_starts_from_the_slerp_of_the_parents_latents(tiny_sampler):
    first, second = _parents()
    child = cross_at(first, second, K, weights=(1.0, 3.0))
    steps = list(tiny_sampler.run(child))
    assert [s.index for s in steps] == [3, 4, 5]
    one, two = (_checkpoint_at(tiny_sampler, r, K) for r in (first, second))
    expected = noise.slerp(0.75, one.latent, two.latent)
    start = Checkpoint(child, K, expected, one.x0_pred, {})
    resumed = list(tiny_sampler.run(child.with_changes(cross=None), start=start))
    # Euler a keeps only a step counter, so a resume at K+1 is the crossed run itself
    assert torch.equal(resumed[-1].latent, steps[-1].latent)


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M", "DPM++ 2M SDE"])
def test_a_crossed_child_reproduces_from_its_recipe_and_resumes_exactly(tiny_sampler, sampler):
    first, second = _parents(sampler)
    child = Recipe.from_json(cross_at(first, second, K, dose=0.4, seed=5).to_json())
    steps = list(tiny_sampler.run(child))
    again = list(tiny_sampler.run(child))
    assert torch.equal(steps[-1].latent, again[-1].latent)
    for k in range(len(steps) - 1):
        start = Checkpoint.from_bytes(steps[k].checkpoint.to_bytes())
        resumed = list(tiny_sampler.run(child, start=start))
        assert torch.equal(resumed[-1].latent, steps[-1].latent), k
    # both parents, the dose and its seed shape the child
    finals = [
        list(tiny_sampler.run(variant))[-1].latent
        for variant in (
            cross_at(first, second.with_changes(seed=9), K, dose=0.4, seed=5),
            cross_at(first, second, K, dose=0.4, seed=6),
            cross_at(first, second, K, dose=0.0, seed=5),
        )
    ]
    assert not any(torch.equal(f, steps[-1].latent) for f in finals)


def test_full_dose_keeps_the_mixed_signal_and_draws_all_noise_fresh(tiny_sampler):
    from studio.engine import crossing, schedulers

    first, second = _parents("DDIM")
    child = cross_at(first, second, K, dose=1.0, seed=11)
    one, two = (_checkpoint_at(tiny_sampler, r, K) for r in (first, second))
    scheduler = schedulers.build_scheduler(
        "DDIM", tiny_sampler.model.scheduler_config, 6, torch.device("cpu")
    )
    a, s = schedulers.noise_levels(scheduler, "DDIM", K + 1)
    x = crossing.cross_latents(one, two, child.cross, (a, s))
    c1, c2 = noise.slerp_weights(0.5, one.latent, two.latent)
    x0_mix = (c1 * one.x0_pred.double().flatten(1) + c2 * two.x0_pred.double().flatten(1)).view(
        x.shape
    )
    fresh = (x.double() - a * x0_mix) / s
    assert torch.allclose(fresh, noise.seeded_noise(11, tuple(x.shape)).double(), atol=1e-4)


def test_crosses_nest_and_a_branch_of_a_cross_replays(tiny_sampler):
    first, second = _parents()
    child = cross_at(first, second, K, dose=0.2, seed=1)
    child_steps = list(tiny_sampler.run(child))
    grand = cross_at(child, first.with_changes(seed=21), 3, dose=0.1, seed=2)
    assert torch.equal(
        list(tiny_sampler.run(Recipe.from_json(grand.to_json())))[-1].latent,
        list(tiny_sampler.run(grand))[-1].latent,
    )
    branch = child.with_changes(prompt="a fox and an owl").branched_from(child, 3)
    start = Checkpoint.from_bytes(child_steps[0].checkpoint.to_bytes())
    assert child_steps[0].index == 3
    resumed = list(tiny_sampler.run(branch, start=start))
    assert torch.equal(list(tiny_sampler.run(branch))[-1].latent, resumed[-1].latent)
