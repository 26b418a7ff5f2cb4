"""The shipped model loads offline through the engine and draws finite images of the right size."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from studio.engine.models import BUNDLED_PATH

BUNDLED = BUNDLED_PATH

pytestmark = [
    pytest.mark.bundled,
    pytest.mark.skipif(
        not (BUNDLED / "model_index.json").exists(), reason="bundled model not present"
    ),
]


def test_bundled_model_is_small_and_in_diffusers_layout() -> None:
    index = json.loads((BUNDLED / "model_index.json").read_text())
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]
    total = sum(p.stat().st_size for p in BUNDLED.rglob("*") if p.is_file())
    assert total <= 50 * 1024 * 1024
    assert not [p for p in BUNDLED.rglob("*") if p.suffix in {".bin", ".ckpt", ".pt", ".pth"}]
    preview = json.loads((BUNDLED / "preview.json").read_text())
    assert np.array(preview["latent_rgb_factors"]).shape == (4, 3)
    assert len(preview["latent_rgb_bias"]) == 3


def test_bundled_model_renders_offline_at_square_and_wide_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    from studio.engine.models import load_model
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler

    sampler = Sampler(load_model(str(BUNDLED), device="cpu"))
    for width, height in ((64, 64), (96, 64)):
        recipe = Recipe(
            prompt="a red car on a mountain road at sunset",
            seed=1,
            steps=6,
            width=width,
            height=height,
        )
        steps, image = sampler.render(recipe.with_changes(model=str(BUNDLED)))
        assert len(steps) == 6
        assert image is not None and image.shape == (height, width, 3) and image.dtype == np.uint8
        assert np.isfinite(steps[-1].latent.numpy()).all()
        assert image.std() > 5  # a picture, not a flat field
