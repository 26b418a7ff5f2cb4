"""The training loop on a tiny configuration: a few seeded CPU steps lower the loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from studio.training import world
from studio.training.components import TINY, build_scheduler
from studio.training.tiny import build_tiny_components, write_tiny_model
from studio.training.train import TrainConfig, diffusion_loss, fit_preview, train_diffusion


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: on a busy shared CPU, two threads waiting on each other are far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_training_steps_lower_the_loss_on_a_fixed_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    parts = build_tiny_components(tmp_path / "tok", seed=0)
    latents = torch.randn(8, 4, 16, 16) * 0.5 + torch.linspace(-1, 1, 16).view(1, 1, 1, 16)
    ids = parts.tokenizer(
        ["a red car at noon"] * 8, padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    timesteps = torch.linspace(100, 900, 8).long()
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1))
    alphas = build_scheduler().alphas_cumprod
    params = list(parts.unet.parameters()) + list(parts.text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=2e-3)
    parts.unet.train()

    def loss() -> torch.Tensor:
        return diffusion_loss(
            parts.unet, parts.text_encoder, alphas, latents, ids, timesteps, noise, 5.0
        )[0]

    with torch.no_grad():
        before = loss().item()
    for _ in range(10):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    with torch.no_grad():
        after = loss().item()
    assert np.isfinite(after) and after < 0.8 * before


def test_train_diffusion_runs_resumes_and_reports_losses(tmp_path: Path) -> None:
    images, scenes = world.sample_dataset(16, seed=0)
    latents = torch.nn.functional.avg_pool2d(
        torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1, 4
    )
    latents = torch.cat([latents, latents[:, :1]], dim=1)
    cfg = TrainConfig(shape=TINY, steps=3, batch=4, warmup=1, checkpoint_seconds=0.0)
    tokenizer = build_tiny_components(tmp_path / "tok").tokenizer
    losses: list[float] = []
    train_diffusion(
        cfg,
        latents,
        scenes,
        tokenizer,
        tmp_path,
        torch.device("cpu"),
        lambda s, v: losses.append(v),
    )
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert (tmp_path / "diffusion.pt").exists()
    more = TrainConfig(shape=TINY, steps=5, batch=4, warmup=1, checkpoint_seconds=0.0)
    resumed: list[int] = []
    train_diffusion(
        more,
        latents,
        scenes,
        tokenizer,
        tmp_path,
        torch.device("cpu"),
        lambda s, v: resumed.append(s),
    )
    assert resumed == [3, 4]
    assert len((tmp_path / "loss.csv").read_text().splitlines()) == 5


def test_preview_fit_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    latents = torch.from_numpy(rng.normal(size=(6, 4, 8, 8)) * 0.5).float()
    factors = np.array([[0.5, 0.1, 0.0], [0.0, 0.4, 0.1], [0.2, 0.0, 0.3], [-0.1, 0.1, 0.2]])
    rgb = np.einsum("nchw,cr->nhwr", latents.numpy(), factors) + 0.1
    images = np.clip((rgb + 1) * 127.5, 0, 255).repeat(4, axis=1).repeat(4, axis=2).astype(np.uint8)
    fitted = fit_preview(latents, images)
    assert np.allclose(fitted["latent_rgb_factors"], factors, atol=0.03)
    assert np.allclose(fitted["latent_rgb_bias"], [0.1] * 3, atol=0.03)


def test_tiny_model_folder_has_the_diffusers_layout(tmp_path: Path) -> None:
    folder = write_tiny_model(tmp_path / "tiny")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["safety_checker"] == [None, None]
    for part in ("unet", "vae", "text_encoder"):
        assert list((folder / part).glob("*.safetensors")), part
    assert (folder / "tokenizer" / "merges.txt").exists()
    assert len(json.loads((folder / "preview.json").read_text())["latent_rgb_factors"]) == 4
