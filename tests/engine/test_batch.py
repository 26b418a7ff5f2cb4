"""Batched runs: each recipe of a batch is reproduced bit for bit by its lone run and its resumes."""

from __future__ import annotations

import pytest
import torch

from studio.engine.breeding import brood
from studio.engine.checkpoint import Checkpoint
from studio.engine.recipe import Recipe, RecipeError


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M SDE", "DPM++ 2M"])
def test_a_batch_member_equals_its_lone_run_and_resumes(tiny_sampler, sampler):
    base = Recipe("a red fox", steps=4, width=16, height=16, sampler=sampler, temperature=1.1)
    children = [c.with_changes(batch=4) for c in brood(base, ((11, 1.0), (22, 1.0)), 3, 0.3, 7)]
    trajectories: dict[int, list] = {0: [], 1: [], 2: []}
    for position, step in tiny_sampler.run_batch(children):
        trajectories[position].append(step)
    finals = []
    for position, child in enumerate(children):
        batched = trajectories[position]
        alone = list(tiny_sampler.run(child))
        assert all(torch.equal(a.latent, b.latent) for a, b in zip(alone, batched, strict=True))
        start = Checkpoint.from_bytes(batched[1].checkpoint.to_bytes())
        resumed = list(tiny_sampler.run(child, start=start))
        assert torch.equal(resumed[-1].latent, batched[-1].latent)
        finals.append(batched[-1].latent)
    assert not torch.equal(finals[0], finals[1])


def test_a_batch_refuses_recipes_that_cannot_share_it(tiny_sampler):
    base = Recipe("a fox", steps=3, width=16, height=16, batch=2)
    with pytest.raises(RecipeError, match="share"):
        list(tiny_sampler.run_batch([base, base.with_changes(steps=4)]))
    with pytest.raises(RecipeError, match="at most 2"):
        list(tiny_sampler.run_batch([base] * 3))
