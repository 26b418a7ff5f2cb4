"""Image-to-image and masked inpainting: the strength's ends, exact resume, the mask's promise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.engine import img2img
from studio.engine.checkpoint import Checkpoint
from studio.engine.recipe import Recipe, RecipeError
from studio.engine.sampler import Sampler

STEPS = 6
W, H = 32, 24


def _picture(width: int = W, height: int = H, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    return (base + rng.integers(0, 40, base.shape)).clip(0, 255).astype(np.uint8)


def _mask(width: int = W, height: int = H) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : 3 * height // 4, width // 2 :] = 255
    return mask


INIT = _picture()
MASK = _mask()


def recipe(sampler: str = "Euler a", **changes) -> Recipe:
    base = Recipe(
        "a red car",
        "blurry",
        seed=11,
        steps=STEPS,
        guidance=5.0,
        sampler=sampler,
        width=W,
        height=H,
    )
    return base.with_changes(**changes)


def img2img_recipe(strength: float, mask: bool = False, **changes) -> Recipe:
    return recipe(
        init_image=img2img.image_hash(INIT),
        strength=strength,
        mask=img2img.image_hash(MASK) if mask else "",
        **changes,
    )


IMAGES = (INIT, MASK)


@pytest.mark.parametrize("name", ["Euler a", "DPM++ 2M", "DDIM"])
def test_strength_one_is_text_to_image_bit_for_bit(tiny_sampler, name):
    plain = list(tiny_sampler.run(recipe(name)))
    from_image = list(tiny_sampler.run(img2img_recipe(1.0, sampler=name), images=IMAGES))
    assert [s.index for s in from_image] == list(range(STEPS))
    for a, b in zip(plain, from_image, strict=True):
        assert torch.equal(a.latent, b.latent)


def test_strength_picks_the_first_step_as_diffusers_does(tiny_sampler):
    assert img2img.start_index(10, 0.6) == 4
    assert img2img.start_index(10, 0.0) == 10
    assert img2img.start_index(10, 1.0) == 0
    steps = list(tiny_sampler.run(img2img_recipe(0.5), images=IMAGES))
    assert [s.index for s in steps] == [3, 4, 5]
    # The start noise is the image's latent noised to step 3, not the recipe's pure noise.
    plain = list(tiny_sampler.run(recipe()))
    assert not torch.allclose(steps[-1].latent, plain[-1].latent)


def test_strength_changes_the_result_and_stays_reproducible(tiny_sampler):
    low = tiny_sampler.render(img2img_recipe(0.35), images=IMAGES)[1]
    again = tiny_sampler.render(img2img_recipe(0.35), images=IMAGES)[1]
    high = tiny_sampler.render(img2img_recipe(0.85), images=IMAGES)[1]
    assert np.array_equal(low, again)
    assert not np.array_equal(low, high)


@pytest.mark.parametrize("name", ["Euler a", "DPM++ 2M", "DPM++ 2M SDE"])
@pytest.mark.parametrize("mask", [False, True])
def test_resume_from_any_step_is_exact(tiny_sampler, name, mask):
    r = img2img_recipe(0.7, mask=mask, sampler=name)
    steps = list(tiny_sampler.run(r, images=IMAGES))
    assert steps[0].index == img2img.start_index(STEPS, 0.7)
    for step in steps[:-1]:
        checkpoint = Checkpoint.from_bytes(step.checkpoint.to_bytes())
        resumed = list(tiny_sampler.run(r, start=checkpoint, images=IMAGES))
        assert [s.index for s in resumed] == list(range(step.index + 1, STEPS))
        assert torch.equal(resumed[-1].latent, steps[-1].latent)


def test_a_branch_of_an_inpaint_version_replays_from_its_recipe(tiny_sampler):
    parent = img2img_recipe(0.8, mask=True)
    steps = list(tiny_sampler.run(parent, images=IMAGES))
    k = steps[1].index
    child = parent.with_changes(prompt="a blue car").branched_from(parent, k)
    checkpoint = Checkpoint.from_bytes(steps[1].checkpoint.to_bytes())
    resumed = list(tiny_sampler.run(child, start=checkpoint, images=IMAGES))
    replayed = list(tiny_sampler.run(child, images=IMAGES))
    assert torch.equal(resumed[-1].latent, replayed[-1].latent)


def test_inpainting_keeps_the_pixels_outside_the_mask(tiny_sampler):
    _, image = tiny_sampler.render(img2img_recipe(1.0, mask=True), images=IMAGES)
    outside = MASK == 0
    assert np.array_equal(image[outside], INIT[outside])
    assert not np.array_equal(image[~outside], INIT[~outside])


def test_inpainting_keeps_the_known_latent_at_every_step(tiny_sampler):
    r = img2img_recipe(1.0, mask=True)
    steps = list(tiny_sampler.run(r, images=IMAGES))
    z0 = img2img.encode_image(tiny_sampler.model, INIT)
    known = img2img.latent_mask(MASK, z0.shape) == 0
    assert known.any()
    assert torch.allclose(steps[-1].latent[known.expand_as(z0)], z0[known.expand_as(z0)])


def test_a_brood_of_inpaint_children_differs_only_inside_the_mask(tiny_sampler):
    children = [img2img_recipe(0.8, mask=True, seed=seed, batch=3) for seed in (1, 2, 3)]
    finals: dict[int, torch.Tensor] = {}
    for position, step in tiny_sampler.run_batch(children, images=IMAGES):
        finals[position] = step.latent
    images = [tiny_sampler.finish(children[i], finals[i], IMAGES) for i in range(3)]
    outside = MASK == 0
    for image in images:
        assert np.array_equal(image[outside], INIT[outside])
    assert not np.array_equal(images[0][~outside], images[1][~outside])
    alone = list(tiny_sampler.run(children[1], images=IMAGES))
    assert torch.equal(alone[-1].latent, finals[1])


def test_strength_zero_gives_back_the_image_through_the_vae():
    from studio.engine.models import load_model

    sampler = Sampler(load_model("bundled", device="cpu"))
    made = sampler.render(Recipe("a red house on green grass", seed=5, steps=8))[1]
    r = Recipe(
        "anything",
        seed=5,
        steps=8,
        init_image=img2img.image_hash(made),
        strength=0.0,
    )
    steps, back = sampler.render(r, images=(made,))
    assert steps == []
    mse = np.mean((back.astype(np.float64) - made.astype(np.float64)) ** 2)
    psnr = 10 * np.log10(255.0**2 / max(mse, 1e-9))
    print(f"strength-0 round trip PSNR {psnr:.1f} dB")
    assert psnr > 25.0, psnr


@pytest.mark.parametrize(
    ("change", "images", "words"),
    [
        ({"strength": 1.5}, IMAGES, "strength"),
        ({}, (INIT,), "mask"),
        ({}, (_picture(W, H, seed=9), MASK), "init image"),
    ],
)
def test_bad_input_gets_one_sentence(tiny_sampler, change, images, words):
    r = img2img_recipe(0.5, mask=True).with_changes(**change)
    with pytest.raises(RecipeError, match=words):
        list(tiny_sampler.run(r, images=images))


def test_a_mask_of_the_wrong_size_is_refused(tiny_sampler):
    small = np.zeros((8, 8), np.uint8)
    r = img2img_recipe(0.5).with_changes(mask=img2img.image_hash(small))
    with pytest.raises(RecipeError, match="mask is 8×8"):
        list(tiny_sampler.run(r, images=(INIT, small)))


def test_recipe_json_round_trip_and_old_recipes_unchanged():
    r = img2img_recipe(0.6, mask=True)
    assert Recipe.from_json(r.to_json()) == r
    assert '"strength": 0.6' in r.to_json() and '"init_image"' in r.to_json()
    old = recipe()
    assert not {"init_image", "strength", "mask"} & set(old.to_dict())
    parsed = Recipe.from_parameters(r.to_parameters())
    assert (parsed.init_image, parsed.strength, parsed.mask) == (r.init_image, 0.6, r.mask)
    with pytest.raises(RecipeError, match="needs an init image"):
        recipe(strength=0.5).validate()
    with pytest.raises(RecipeError, match="sha256"):
        recipe(init_image="abc").validate()


def test_image_hash_is_of_the_pixels_and_their_shape():
    flat = np.zeros((4, 6, 3), np.uint8)
    assert img2img.image_hash(flat) != img2img.image_hash(np.zeros((6, 4, 3), np.uint8))
    assert img2img.image_hash(flat) != img2img.image_hash(np.zeros((4, 6), np.uint8))
    assert img2img.image_hash(flat) == img2img.image_hash(flat.copy())


@pytest.mark.parametrize("name", ["Euler a", "DDIM"])
def test_the_forward_frames_run_from_the_image_to_the_latent_the_run_starts_from(
    tiny_sampler, monkeypatch, name
):
    from studio.engine import schedulers
    from studio.engine.preview import preview_image

    r = img2img_recipe(0.6, mask=True, sampler=name)
    frames = tiny_sampler.forward_previews(r, IMAGES)
    first = img2img.start_index(STEPS, 0.6)
    assert len(frames) == STEPS - first + 1 == 4
    assert np.array_equal(frames[0], INIT), "it starts at the layer itself"

    fed: list[torch.Tensor] = []
    predict = tiny_sampler._predict

    def spy(scheduler, latent, *args, **kwargs):
        fed.append(latent.clone())
        return predict(scheduler, latent, *args, **kwargs)

    monkeypatch.setattr(tiny_sampler, "_predict", spy)
    next(tiny_sampler.run(r, images=IMAGES))
    scheduler = schedulers.build_scheduler(
        name, tiny_sampler.model.scheduler_config, STEPS, tiny_sampler.model.device
    )
    a, s = schedulers.noise_levels(scheduler, name, first)
    start = preview_image(tiny_sampler.model, fed[0] / (a * a + s * s) ** 0.5)
    assert np.array_equal(frames[-1], start), "it ends at what the first step denoises"
    distances = [np.abs(f.astype(int) - frames[1].astype(int)).mean() for f in frames[1:]]
    assert distances == sorted(distances), "each level is further from the first noised one"
