"""The preview decoder: its training resumes, and the shipped one beats the linear map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from studio.engine.models import BUNDLED_PATH
from studio.training.preview_decoder import DecoderShape, DistilConfig, build_decoder, train

BUNDLED = BUNDLED_PATH
SHIPPED = BUNDLED / "preview_decoder"


def test_an_interrupted_distillation_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.training import preview_decoder

    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(40, 4, 4, 4, generator=generator)
    targets = torch.randint(0, 256, (40, 3, 16, 16), generator=generator, dtype=torch.uint8)
    cfg = DistilConfig(shape=DecoderShape(4, (1, 0, 0)), steps=4, batch=2, checkpoint_seconds=0)
    for run in ("straight", "interrupted"):
        (tmp_path / run).mkdir()
    straight = train(cfg, latents, targets, tmp_path / "straight")

    calls = []
    real_loss = preview_decoder.F.mse_loss

    def interrupt_at_the_third_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(preview_decoder.F, "mse_loss", interrupt_at_the_third_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, latents, targets, tmp_path / "interrupted")
    monkeypatch.setattr(preview_decoder.F, "mse_loss", real_loss)
    state = torch.load(tmp_path / "interrupted" / "state.pt", weights_only=True)
    assert state["step"] == 2
    resumed = train(cfg, latents, targets, tmp_path / "interrupted")
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_the_student_upsamples_the_bundled_latents_to_image_size() -> None:
    decoder = build_decoder(DecoderShape())
    assert decoder.decoder(torch.zeros(1, 4, 16, 16)).shape == (1, 3, 64, 64)


@pytest.mark.bundled
@pytest.mark.skipif(not (SHIPPED / "config.json").exists(), reason="no shipped preview decoder")
def test_the_shipped_decoder_is_small_and_beats_the_linear_map_by_far() -> None:
    from diffusers import AutoencoderTiny

    from studio.engine.models import load_model
    from studio.engine.preview import describe_preview, linear_preview, tiny_preview
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler

    files = sorted(p.name for p in SHIPPED.iterdir())
    assert files == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 1024 * 1024
    assert isinstance(AutoencoderTiny.from_pretrained(SHIPPED), AutoencoderTiny)
    model = load_model(device="cpu")
    assert describe_preview(model) == "tiny decoder (preview_decoder)"
    sampler = Sampler(model)
    steps = list(sampler.run(Recipe(prompt="a red car on a mountain road at sunset", seed=3)))
    full = sampler.decode(steps[-1].x0_pred).astype(np.float64)

    def psnr(image: np.ndarray) -> float:
        return 10 * np.log10(255.0**2 / np.mean((image.astype(np.float64) - full) ** 2))

    from PIL import Image

    linear = linear_preview(steps[-1].x0_pred, model.preview_factors, model.preview_bias)
    linear = np.asarray(Image.fromarray(linear).resize((64, 64), Image.Resampling.BILINEAR))
    tiny = tiny_preview(model.preview_decoder, steps[-1].x0_pred)
    assert np.array_equal(steps[-1].preview_x0, tiny) and tiny.shape == (64, 64, 3)
    assert psnr(tiny) >= 24.0 and psnr(tiny) >= psnr(linear) + 5.0
