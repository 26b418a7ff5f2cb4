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


def test_a_member_dropped_from_a_batch_leaves_the_others_exact(tiny_sampler):
    import threading

    base = Recipe("a red fox", steps=4, width=16, height=16, sampler="Euler a", batch=3)
    children = list(brood(base, ((11, 1.0), (22, 1.0)), 3, 0.3, 7))
    cancels = [threading.Event() for _ in children]
    seen: dict[int, list] = {0: [], 1: [], 2: []}
    for position, step in tiny_sampler.run_batch(children, cancels=cancels):
        seen[position].append(step)
        if position == 1 and step.index == 1:
            cancels[1].set()
    assert [len(seen[p]) for p in range(3)] == [4, 2, 4]
    for position in (0, 2):
        alone = list(tiny_sampler.run(children[position]))
        assert torch.equal(alone[-1].latent, seen[position][-1].latent)


def test_a_batch_resumed_from_checkpoints_equals_the_full_runs(tiny_sampler):
    base = Recipe("a red fox", steps=5, width=16, height=16, sampler="DPM++ 2M", batch=4)
    children = list(brood(base, ((11, 1.0), (22, 1.0)), 3, 0.3, 7))
    full = {p: [] for p in range(3)}
    for position, step in tiny_sampler.run_batch(children):
        full[position].append(step)
    starts = [Checkpoint.from_bytes(full[p][1].checkpoint.to_bytes()) for p in range(3)]
    resumed = {p: [] for p in range(3)}
    for position, step in tiny_sampler.run_batch(children[:2], starts=starts[:2]):
        resumed[position].append(step)
    for position in (0, 1):
        assert [s.index for s in resumed[position]] == [2, 3, 4]
        assert torch.equal(resumed[position][-1].latent, full[position][-1].latent)
    with pytest.raises(Exception, match="one step"):
        later = Checkpoint.from_bytes(full[2][2].checkpoint.to_bytes())
        list(tiny_sampler.run_batch(children[:2], starts=[starts[0], later]))
