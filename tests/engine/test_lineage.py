"""A recipe's lineage: JSON, A1111 text, validation, and the sampler replaying it from noise."""

from __future__ import annotations

import pytest
import torch

from studio.engine.checkpoint import Checkpoint
from studio.engine.recipe import Recipe, RecipeError


def _root() -> Recipe:
    return Recipe("a red fox", seed=3, steps=6, width=16, height=16, sampler="DPM++ 2M SDE")


def test_lineage_round_trips_and_names_the_parent_in_a1111_text():
    root = _root()
    branch = root.with_changes(prompt="a blue fox").branched_from(root, 1)
    nested = branch.with_changes(guidance=3.0).branched_from(branch, 3)
    assert Recipe.from_json(nested.to_json()) == nested
    assert nested.parent == branch and branch.parent == root and root.parent is None
    text = nested.to_parameters()
    assert f"Branch: step 4 of {branch.short_hash()}" in text
    notes: list[str] = []
    read = Recipe.from_parameters(text, notes)
    assert read.guidance == 3.0 and read.lineage == () and "branch" in notes[0]


@pytest.mark.parametrize(
    "lineage_steps, words",
    [((3, 3), "rise"), ((6,), "rise"), ((-1,), "rise")],
)
def test_a_lineage_that_could_not_have_run_is_refused(lineage_steps, words):
    recipe = _root()
    for step in lineage_steps:
        recipe = recipe.branched_from(recipe, step)
    with pytest.raises(RecipeError, match=words):
        recipe.validate(1)
    with pytest.raises(RecipeError, match="steps, sampler and size"):
        _root().branched_from(_root().with_changes(steps=7), 2).validate(1)


def test_a_branch_recipe_renders_from_noise_as_its_resume_did(tiny_sampler):
    root = _root()
    steps = list(tiny_sampler.run(root))
    change = root.with_changes(prompt="a blue fox", renoise_seed=4, renoise_strength=0.5)
    # as the window does: the parent's step checkpoint crosses to the worker as bytes
    start = Checkpoint.from_bytes(steps[1].checkpoint.to_bytes())
    branch = change.branched_from(root, 1)
    resumed = list(tiny_sampler.run(branch, start=start))
    start2 = Checkpoint.from_bytes(resumed[1].checkpoint.to_bytes())
    nested = root.with_changes(guidance=2.0).branched_from(branch, 3)
    nested_resumed = list(tiny_sampler.run(nested, start=start2))

    from_noise = list(tiny_sampler.run(branch))
    assert [s.index for s in from_noise] == [2, 3, 4, 5]
    assert torch.equal(from_noise[-1].latent, resumed[-1].latent)
    assert torch.equal(list(tiny_sampler.run(nested))[-1].latent, nested_resumed[-1].latent)
    assert not torch.equal(resumed[-1].latent, list(tiny_sampler.run(change))[-1].latent)


def test_shared_metadata_names_the_lineage_models_too():
    root = _root().with_changes(model="/home/someone/models/sd15.safetensors")
    branch = root.with_changes(prompt="a blue fox").branched_from(root, 2)
    shared = branch.shared()
    assert shared.model == "sd15" and shared.lineage[0].recipe.model == "sd15"
    assert "/home/someone" not in shared.to_json()
