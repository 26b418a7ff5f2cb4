"""Fidelity and novelty from the model's own denoising errors: exactness, orderings, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from studio.engine.models import BUNDLED_PATH
from studio.engine.scoring import ScoreCost, ScoreError, Scorer
from studio.training import world

CAR = world.Scene("car", "red", "mountain road", "sunset")


def _random_latent(seed: int, shape=(1, 4, 8, 8)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_same_latent_same_scores_bit_for_bit_whatever_else_is_scored(tiny_model):
    scorer = Scorer(tiny_model, ScoreCost(timesteps=3, noises=2, seed=5))
    a, b = _random_latent(1), _random_latent(2)
    alone = next(scorer.score([a], "a red car"))
    in_batch = list(scorer.score([b, a], "a red car"))[1]
    fresh = next(Scorer(tiny_model, ScoreCost(3, 2, 5)).score([a], "a red car"))
    for other in (in_batch, fresh):
        assert np.array_equal(alone.errors, other.errors)
        assert alone.fidelity == other.fidelity and alone.novelty == other.novelty
        assert np.array_equal(alone.features, other.features)
    other_seed = next(Scorer(tiny_model, ScoreCost(3, 2, 6)).score([a], "a red car"))
    assert not np.array_equal(alone.errors, other_seed.errors)
    assert alone.errors.shape == (2, 3, 2) and alone.evaluations == ScoreCost(3, 2).evaluations()


def test_images_are_encoded_and_cropped_to_the_vae_factor(tiny_model):
    scorer = Scorer(tiny_model, ScoreCost(2, 1))
    image = np.random.default_rng(0).integers(0, 256, (17, 21, 3), dtype=np.uint8)
    latent = scorer.encode(image)
    factor = tiny_model.size_factor
    assert latent.shape == (1, tiny_model.latent_channels, 17 // factor, 21 // factor)
    with pytest.raises(ScoreError):
        scorer.encode(image.astype(np.float32))
    with pytest.raises(ScoreError):
        ScoreCost(timesteps=0).validate()


def test_cancel_stops_between_unet_batches(tiny_model):
    scorer = Scorer(tiny_model, ScoreCost(4, 1))
    cancel = threading.Event()
    latents = [_random_latent(i) for i in range(3)]
    results = []
    for result in scorer.score(latents, "x", cancel=cancel):
        results.append(result)
        cancel.set()
    assert len(results) == 1
    assert list(scorer.score(latents, "x", cancel=cancel)) == []


@pytest.mark.bundled
@pytest.mark.skipif(not (BUNDLED_PATH / "model_index.json").exists(), reason="no bundled model")
def test_bundled_model_orders_the_obvious_cases():
    from studio.engine.models import load_model
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler

    model = load_model("bundled", device="cpu")
    scorer = Scorer(model, ScoreCost(timesteps=4, noises=1))
    prompt = CAR.caption()
    wrong = [
        world.Scene("boat", "red", "mountain road", "sunset").caption(),
        world.Scene("car", "blue", "mountain road", "sunset").caption(),
        world.Scene("car", "red", "city", "sunset").caption(),
        world.Scene("car", "red", "mountain road", "night").caption(),
    ]
    generated = Sampler(model).render(Recipe(prompt=prompt, seed=3))[1]
    rendered = world.render(CAR, seed=11)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    scores = list(scorer.score_images([generated, rendered, noise], prompt, wrong))
    for result in scores[:2]:
        assert result.fidelity > max(result.alternative_fidelities)
    assert scores[2].novelty > max(s.novelty for s in scores[:2])
    assert scores[2].fidelity < min(s.fidelity for s in scores[:2])
