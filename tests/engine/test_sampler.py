"""The exactness contract of the engine, bit for bit on CPU."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from studio.engine.checkpoint import Checkpoint
from studio.engine.errors import CheckpointError
from studio.engine.recipe import Recipe
from studio.engine.sampler import Sampler
from studio.engine.schedulers import SAMPLERS

ROOT = Path(__file__).resolve().parents[2]
STEPS = 6


def recipe_for(sampler: str, **changes) -> Recipe:
    return Recipe(
        "a red car on a road",
        "blurry",
        seed=11,
        steps=STEPS,
        guidance=5.0,
        sampler=sampler,
        width=32,
        height=24,
    ).with_changes(**changes)


@pytest.fixture(scope="module")
def xl_sampler(tiny_xl_model_dir):
    from studio.engine.models import load_model

    return Sampler(load_model(str(tiny_xl_model_dir), device="cpu"))


def _final(sampler: Sampler, recipe: Recipe, start: Checkpoint | None = None) -> torch.Tensor:
    steps = list(sampler.run(recipe, start=start))
    return steps[-1].latent if steps else start.latent


@pytest.mark.parametrize("name", SAMPLERS)
def test_resume_is_bit_identical_for_every_sampler(tiny_sampler, name):
    recipe = recipe_for(name)
    steps = list(tiny_sampler.run(recipe))
    assert [s.index for s in steps] == list(range(STEPS))
    for k in (0, 2, STEPS - 2, STEPS - 1):
        resumed = list(tiny_sampler.run(recipe, start=steps[k].checkpoint))
        assert [s.index for s in resumed] == list(range(k + 1, STEPS))
        final = resumed[-1].latent if resumed else steps[k].checkpoint.latent
        assert torch.equal(final, steps[-1].latent), f"{name}: resume from step {k} differs"


@pytest.mark.parametrize("name", ["Euler a", "DPM++ 2M", "DPM++ 2M SDE", "UniPC"])
def test_resume_through_bytes_is_bit_identical_on_sdxl_shape(xl_sampler, name):
    recipe = recipe_for(name)
    steps = list(xl_sampler.run(recipe))
    checkpoint = Checkpoint.from_bytes(steps[2].checkpoint.to_bytes())
    assert torch.equal(_final(xl_sampler, recipe, checkpoint), steps[-1].latent)


def test_same_recipe_twice_is_identical_and_seed_matters(tiny_sampler):
    recipe = recipe_for("Euler a")
    assert torch.equal(_final(tiny_sampler, recipe), _final(tiny_sampler, recipe))
    assert not torch.equal(
        _final(tiny_sampler, recipe), _final(tiny_sampler, recipe.with_changes(seed=12))
    )


def test_multistep_history_is_needed_for_exact_resume(tiny_sampler):
    """Without the stored history DPM++ 2M drops to first order: the test above would catch a lost history."""
    recipe = recipe_for("DPM++ 2M")
    steps = list(tiny_sampler.run(recipe))
    state = dict(steps[2].checkpoint.scheduler_state)
    state["model_outputs"] = [None] * len(state["model_outputs"])
    state["lower_order_nums"] = 0
    stripped = Checkpoint(recipe, 2, steps[2].latent, steps[2].x0_pred, state)
    assert not torch.equal(_final(tiny_sampler, recipe, stripped), steps[-1].latent)


@pytest.mark.parametrize(
    "change", [{"prompt": "a blue boat"}, {"negative_prompt": "red"}, {"guidance": 9.0}]
)
def test_branch_with_changed_conditioning_differs(tiny_sampler, change):
    recipe = recipe_for("DPM++ 2M")
    steps = list(tiny_sampler.run(recipe))
    branched = _final(tiny_sampler, recipe.with_changes(**change), steps[1].checkpoint)
    assert not torch.equal(branched, steps[-1].latent)
    assert torch.isfinite(branched).all()


def test_renoise_varies_a_deterministic_branch(tiny_sampler):
    recipe = recipe_for("DDIM")
    steps = list(tiny_sampler.run(recipe))
    checkpoint = steps[1].checkpoint
    seed_only = _final(tiny_sampler, recipe.with_changes(seed=99), checkpoint)
    assert torch.equal(seed_only, steps[-1].latent)  # DDIM ignores the seed after the start
    a = _final(tiny_sampler, recipe.with_changes(renoise_seed=99, renoise_strength=0.5), checkpoint)
    b = _final(
        tiny_sampler, recipe.with_changes(renoise_seed=100, renoise_strength=0.5), checkpoint
    )
    assert not torch.equal(a, steps[-1].latent) and not torch.equal(a, b)
    again = _final(
        tiny_sampler, recipe.with_changes(renoise_seed=99, renoise_strength=0.5), checkpoint
    )
    assert torch.equal(a, again)


def test_branch_must_keep_steps_sampler_and_size(tiny_sampler):
    recipe = recipe_for("Euler")
    checkpoint = next(iter(tiny_sampler.run(recipe))).checkpoint
    for change in ({"steps": 8}, {"sampler": "DDIM"}, {"width": 40}):
        with pytest.raises(CheckpointError):
            list(tiny_sampler.run(recipe.with_changes(**change), start=checkpoint))


def test_cancel_stops_within_one_step_and_keeps_steps(tiny_sampler):
    cancel = threading.Event()
    seen = []
    for step in tiny_sampler.run(recipe_for("Euler"), cancel=cancel):
        seen.append(step)
        if step.index == 2:
            cancel.set()
    assert [s.index for s in seen] == [0, 1, 2]
    resumed = list(tiny_sampler.run(recipe_for("Euler"), start=seen[-1].checkpoint))
    assert torch.equal(resumed[-1].latent, _final(tiny_sampler, recipe_for("Euler")))


def test_steps_carry_previews_and_finite_latents(tiny_sampler):
    steps = list(tiny_sampler.run(recipe_for("Euler a")))
    early, step = steps[1], steps[-1]
    assert early.preview_x0.shape == (12, 16, 3) and early.preview_x0.dtype == np.uint8
    assert early.preview_xt.shape == (12, 16, 3)
    assert not np.array_equal(early.preview_x0, early.preview_xt)  # static vs prediction
    assert step.total == STEPS and step.is_last and not early.is_last
    image = tiny_sampler.decode(step.latent)
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8


def test_variation_strength_moves_the_result(tiny_sampler):
    recipe = recipe_for("Euler")
    base = _final(tiny_sampler, recipe)
    slight = _final(tiny_sampler, recipe.with_changes(variation_seed=5, variation_strength=0.1))
    strong = _final(tiny_sampler, recipe.with_changes(variation_seed=5, variation_strength=0.9))
    assert 0 < (slight - base).norm() < (strong - base).norm()


def test_long_prompt_reports_dropped_tokens(tiny_sampler):
    info = tiny_sampler.prompt_info("word " * 60)
    assert info.truncated and info.limit == 75 and info.dropped_tokens == info.tokens - 75
    assert info.dropped_text.strip() and len(info.encoded_text) < len("word " * 60)
    assert not tiny_sampler.prompt_info("a car").truncated


def test_checkpoint_resumes_exactly_in_another_process(tiny_sampler, tiny_model_dir, tmp_path):
    recipe = recipe_for("DPM++ 2M SDE", model=str(tiny_model_dir))
    steps = list(tiny_sampler.run(recipe))
    (tmp_path / "k.ckpt").write_bytes(steps[2].checkpoint.to_bytes())
    code = (
        "import sys, torch\n"
        f"torch.set_num_threads({torch.get_num_threads()})\n"  # the count is part of CPU exactness
        "from studio.engine.checkpoint import Checkpoint\n"
        "from studio.engine.models import load_model\n"
        "from studio.engine.sampler import Sampler\n"
        f"c = Checkpoint.from_bytes(open({str(tmp_path / 'k.ckpt')!r}, 'rb').read())\n"
        "s = Sampler(load_model(c.recipe.model, device='cpu'))\n"
        "torch.save(list(s.run(c.recipe, start=c))[-1].latent, sys.argv[1])\n"
    )
    out = tmp_path / "final.pt"
    subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, check=True, timeout=300)
    assert torch.equal(torch.load(out, weights_only=True), steps[-1].latent)
