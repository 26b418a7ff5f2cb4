"""A reopened project is as alive as before: branching from a stored step continues exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from studio.document.store import ProjectStore
from studio.engine.checkpoint import Checkpoint
from studio.engine.recipe import Recipe
from studio.engine.sampler import Step
from studio.protocol import StepRecord

STEPS = 6


def _store_run(store: ProjectStore, version_id: str, steps: list[Step]) -> None:
    for step in steps:
        store.append_step(
            version_id,
            StepRecord(
                step.index,
                step.total,
                step.timestep,
                step.sigma,
                step.checkpoint.to_bytes(),
                step.preview_x0,
                step.preview_xt,
            ),
        )


@pytest.mark.parametrize("sampler", ["DPM++ 2M", "Euler a", "DPM++ 2M SDE Karras"])
def test_branch_from_a_reopened_step_is_bit_identical(
    tiny_sampler, tmp_path: Path, sampler: str
) -> None:
    recipe = Recipe(
        "a red car on a road",
        seed=11,
        steps=STEPS,
        guidance=5.0,
        sampler=sampler,
        width=32,
        height=24,
    )
    path = tmp_path / "resume.studio"
    original = list(tiny_sampler.run(recipe))
    final = original[-1].latent.clone()
    image = tiny_sampler.decode(final)

    with ProjectStore.create(path) as store:
        root = store.add_version(recipe_json=recipe.to_json(), name="v1").result()
        _store_run(store, root, original)
        store.finish_version(root, image, partial=False).result()
    del original

    k = 2
    with ProjectStore.open(path) as store:
        record = store.version(root)
        assert record.recipe() == recipe
        assert store.step_indices(root) == list(range(STEPS))
        preview = store.step_preview_image(root, k)
        assert preview.dtype == np.uint8 and preview.ndim == 3
        stored = store.step(root, k)
        assert np.array_equal(stored.preview_x0, preview)
        assert stored.checkpoint == store.step_checkpoint(root, k)
        checkpoint = Checkpoint.from_bytes(stored.checkpoint)
        assert checkpoint.step_index == k

        branch_steps = list(tiny_sampler.run(record.recipe(), start=checkpoint))
        assert [s.index for s in branch_steps] == list(range(k + 1, STEPS))
        assert torch.equal(branch_steps[-1].latent, final), "resume after reopen is bit-identical"

        branch = store.add_version(
            recipe_json=recipe.to_json(), name="v2", parent_id=root, branch_step=k
        ).result()
        _store_run(store, branch, branch_steps)
        store.finish_version(
            branch, tiny_sampler.decode(branch_steps[-1].latent), partial=False
        ).result()
        assert store.result_png(branch) == store.result_png(root), "the same image, byte for byte"

    with ProjectStore.open(path) as store:
        # and the branch's own stored steps resume exactly too
        last_but_one = Checkpoint.from_bytes(store.step_checkpoint(branch, STEPS - 2))
        resumed = list(tiny_sampler.run(recipe, start=last_but_one))
        assert torch.equal(resumed[-1].latent, final)
