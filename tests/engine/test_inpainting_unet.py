"""A true inpainting UNet (2 × latent + 1 = 9 input channels): it loads, every step gets
``cat([x_t scaled, mask, masked image's latent])`` as diffusers' inpaint pipeline feeds
it, the composite is exact outside the mask and resumes are exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from studio.engine import img2img
from studio.engine.checkpoint import Checkpoint
from studio.engine.model_files import check_model_folder
from studio.engine.sampler import Sampler
from tests.engine.hostile_inputs import rebuild_unet
from tests.engine.test_img2img import IMAGES, INIT, MASK, STEPS, img2img_recipe, recipe


@pytest.fixture(scope="module")
def inpaint_folder(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny SD folder with a random UNet taking 4 + 1 + 4 channels, built in code."""
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("inpaint") / "model"))
    rebuild_unet(folder, in_channels=9)
    return folder


@pytest.fixture(scope="module")
def inpaint_sampler(inpaint_folder) -> Sampler:
    from studio.engine.models import load_model

    return Sampler(load_model(str(inpaint_folder), device="cpu"))


def _unet_inputs(sampler: Sampler) -> tuple[list[torch.Tensor], object]:
    seen: list[torch.Tensor] = []
    handle = sampler.model.unet.register_forward_pre_hook(
        lambda _module, args: seen.append(args[0].detach().clone())
    )
    return seen, handle


def test_a_9_channel_unet_loads_as_an_inpainting_model(inpaint_folder, inpaint_sampler):
    check_model_folder(inpaint_folder)  # no longer refused as incompatible
    model = inpaint_sampler.model
    assert model.is_inpainting and model.latent_channels == 4
    assert int(model.unet.config.in_channels) == 9


def test_every_step_feeds_the_mask_and_the_masked_images_latent(inpaint_sampler):
    r = img2img_recipe(1.0, mask=True)
    seen, handle = _unet_inputs(inpaint_sampler)
    try:
        steps = list(inpaint_sampler.run(r, images=IMAGES))
    finally:
        handle.remove()
    assert len(seen) == STEPS and all(x.shape[:2] == (2, 9) for x in seen)  # guided: 2 rows
    shape = steps[0].latent.shape
    binary = torch.from_numpy(MASK >= 128).float()[None, None]
    small = torch.nn.functional.interpolate(binary, size=tuple(shape[-2:]))
    masked = torch.from_numpy(INIT).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    masked = masked * (binary < 0.5)
    expected = img2img.encode_normalized(inpaint_sampler.model, masked)
    for x in seen:
        assert torch.equal(x[:, 4:5], small.expand(2, -1, -1, -1))
        assert torch.allclose(x[:, 5:], expected.expand(2, -1, -1, -1))
        assert torch.equal(x[0, :4], x[1, :4])  # the scaled latent, for both guidance rows


def test_the_mask_steers_the_model(inpaint_sampler):
    """Not blended in as for an ordinary UNet: the latent outside the mask is the model's."""
    r = img2img_recipe(1.0, mask=True)
    with_mask = list(inpaint_sampler.run(r, images=IMAGES))[-1].latent
    everything = list(inpaint_sampler.run(img2img_recipe(1.0), images=IMAGES))[-1].latent
    assert not torch.equal(with_mask, everything)


def test_the_composite_is_exact_outside_the_mask(inpaint_sampler):
    r = img2img_recipe(0.8, mask=True)
    _, image = inpaint_sampler.render(r, images=IMAGES)
    assert np.array_equal(image[MASK == 0], INIT[MASK == 0])
    assert not np.array_equal(image[MASK > 0], INIT[MASK > 0])


@pytest.mark.parametrize("name", ["Euler a", "DPM++ 2M SDE"])
def test_resume_from_any_step_is_exact(inpaint_sampler, name):
    r = img2img_recipe(0.7, mask=True, sampler=name)
    steps = list(inpaint_sampler.run(r, images=IMAGES))
    for step in steps[:-1]:
        checkpoint = Checkpoint.from_bytes(step.checkpoint.to_bytes())
        resumed = list(inpaint_sampler.run(r, start=checkpoint, images=IMAGES))
        assert [s.index for s in resumed] == list(range(step.index + 1, STEPS))
        assert torch.equal(resumed[-1].latent, steps[-1].latent)


def test_a_batch_gives_each_recipe_its_lone_run(inpaint_sampler):
    recipes = [img2img_recipe(0.7, mask=True, batch=2, seed=s) for s in (1, 2)]
    batched: dict[int, torch.Tensor] = {}
    for position, step in inpaint_sampler.run_batch(recipes, images=IMAGES):
        batched[position] = step.latent
    for position, r in enumerate(recipes):
        alone = list(inpaint_sampler.run(r, images=IMAGES))[-1].latent
        assert torch.equal(batched[position], alone)


def test_without_a_mask_it_repaints_everything_from_an_all_ones_mask(inpaint_sampler):
    seen, handle = _unet_inputs(inpaint_sampler)
    try:
        steps, image = inpaint_sampler.render(recipe())  # text-to-image
    finally:
        handle.remove()
    assert image is not None and image.shape == (24, 32, 3)
    zero = img2img.encode_normalized(inpaint_sampler.model, torch.zeros(1, 3, 24, 32))
    assert all(torch.equal(x[:, 4], torch.ones_like(x[:, 4])) for x in seen)
    assert all(torch.allclose(x[:, 5:], zero.expand(2, -1, -1, -1)) for x in seen)
    again = list(inpaint_sampler.run(recipe()))
    assert torch.equal(again[-1].latent, steps[-1].latent)
