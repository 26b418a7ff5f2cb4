"""Train the bundled model from scratch: ``python -m studio.training.train --out DIR``.

Three stages, each resumable (state lives under ``--run-dir``, default ``runs/noise-world``):

1. **VAE.** An ``AutoencoderKL`` learns to compress the rendered 64x64 scenes 4x per
   side (L1 reconstruction + a tiny KL term). It is then frozen, the whole dataset is
   encoded once (latent mean x scaling factor, where scaling factor = 1/std), and the
   latents are cached.
2. **Diffusion.** The classic recipe: pick a random timestep, add noise to a latent,
   predict the noise from (noisy latent, caption embedding, t), minimise the MSE
   (min-SNR weighted). The tiny ``CLIPTextModel`` is trained jointly with the UNet from
   scratch. 10% of captions are dropped to "" so classifier-free guidance works. The
   learning rate is constant after warm-up and the exported weights are an EMA.
3. **Export.** A standard diffusers folder plus ``preview.json`` (a least-squares
   latent->RGB map for fast previews).

Every step draws its batch, timesteps and noise from generators seeded by
(seed, step), so an interrupted run resumes on the same trajectory. Rerunning the same
command resumes from the latest checkpoint; delete the run directory to start over.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import diffusers
import numpy as np
import torch
import torch.nn.functional as F

from studio.engine.models import BUNDLED_PATH
from studio.training import world
from studio.training.components import (
    BUNDLED,
    ModelShape,
    build_scheduler,
    build_text_encoder,
    build_unet,
    build_vae,
)
from studio.training.vocab import MAX_LENGTH, load_tokenizer, write_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TrainConfig:
    """Everything that determines the trained model."""

    shape: ModelShape = field(default_factory=lambda: BUNDLED)
    seed: int = 0
    dataset_size: int = 12_000
    vae_steps: int = 1200
    vae_batch: int = 32
    vae_lr: float = 2e-3
    vae_kl_weight: float = 1e-6
    vae_crop: int = 32
    steps: int = 4500
    batch: int = 32
    lr: float = 8e-4
    warmup: int = 100
    caption_dropout: float = 0.1
    ema_decay: float = 0.998
    min_snr_gamma: float = 5.0
    noise_offset: float = 0.1
    checkpoint_seconds: float = 180.0


def log_line(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _save_atomic(state: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load(path: Path) -> dict:
    # Our own run files, but still read without executing pickled code.
    return torch.load(path, map_location="cpu", weights_only=True)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NxHxWx3 -> float Nx3xHxW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


# ------------------------------------------------------------------ VAE


def train_vae(cfg: TrainConfig, images: np.ndarray, run_dir: Path, device: torch.device):
    """Stage 1: train (or load) the autoencoder; returns it frozen, with its scaling factor unset."""
    path = run_dir / "vae.pt"
    torch.manual_seed(cfg.seed)
    vae = build_vae(cfg.shape).to(device)
    if path.exists():
        state = _load(path)
        vae.load_state_dict(state["model"])
        if state["step"] >= cfg.vae_steps:
            log_line(f"vae: loaded finished stage ({state['step']} steps)")
            return vae.eval().requires_grad_(False)
    else:
        state = None
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    start = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        log_line(f"vae: resuming at step {start}")
    last_save = time.monotonic()
    for step in range(start, cfg.vae_steps):
        rng = np.random.default_rng([cfg.seed, 1, step])
        # Random crops: the VAE is convolutional, and crops make each step 4x cheaper.
        y, x = rng.integers(0, images.shape[1] - cfg.vae_crop + 1, 2)
        crops = images[
            rng.integers(0, len(images), cfg.vae_batch), y : y + cfg.vae_crop, x : x + cfg.vae_crop
        ]
        batch = images_to_tensor(np.ascontiguousarray(crops)).to(device)
        lr = (
            cfg.vae_lr
            * min(1.0, (step + 1) / 50)
            * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.vae_steps)))
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        posterior = vae.encode(batch).latent_dist
        # Decode the mean, not a sample: the diffusion model only ever sees latent means,
        # and skipping the sampling noise makes the short training converge much faster.
        z = posterior.mean
        recon = vae.decode(z).sample
        rec_loss = F.l1_loss(recon, batch)
        loss = rec_loss + cfg.vae_kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        if step % 25 == 0 or step == cfg.vae_steps - 1:
            log_line(f"vae step {step + 1}/{cfg.vae_steps} l1 {rec_loss.item():.4f}")
        done = step + 1 == cfg.vae_steps
        if done or time.monotonic() - last_save > cfg.checkpoint_seconds:
            _save_atomic(
                {"model": vae.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1},
                path,
            )
            last_save = time.monotonic()
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def encode_dataset(vae, images: np.ndarray, device: torch.device, batch: int = 256) -> torch.Tensor:
    """Unscaled latent means for every image (float32, on CPU)."""
    out = []
    for i in range(0, len(images), batch):
        x = images_to_tensor(images[i : i + batch]).to(device)
        out.append(vae.encode(x).latent_dist.mean.float().cpu())
    return torch.cat(out)


def fit_preview(latents: torch.Tensor, images: np.ndarray) -> dict:
    """Least-squares latent->RGB map from (scaled) latents to images at latent resolution."""
    h, w = latents.shape[-2:]
    small = F.interpolate(images_to_tensor(images), size=(h, w), mode="area")
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]).double()
    y = small.permute(0, 2, 3, 1).reshape(-1, 3).double()
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    solution = torch.linalg.lstsq(x1, y).solution
    residual = (x1 @ solution - y).pow(2).mean().sqrt().item()
    return {
        "latent_rgb_factors": [[round(v, 6) for v in row] for row in solution[:-1].tolist()],
        "latent_rgb_bias": [round(v, 6) for v in solution[-1].tolist()],
        "fit_rmse": round(residual, 4),
        "space": "scaled latents (the UNet's space), RGB in [-1, 1]",
    }


# ------------------------------------------------------------ diffusion


class CaptionTokens:
    """Tokenizes captions padded to 77 tokens, caching repeated captions."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in set(captions) if c not in self.cache]
        if missing:
            ids = self.tokenizer(
                missing,
                padding="max_length",
                max_length=MAX_LENGTH,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            self.cache.update(zip(missing, ids, strict=True))
        return torch.stack([self.cache[c] for c in captions])


def batch_captions(
    cfg: TrainConfig, scenes: list[world.Scene], indices: np.ndarray, step: int
) -> list[str]:
    rng = random.Random(cfg.seed * 1_000_003 + step)
    return ["" if rng.random() < cfg.caption_dropout else scenes[i].caption(rng) for i in indices]


def diffusion_loss(
    unet, text_encoder, scheduler_alphas: torch.Tensor, latents, token_ids, timesteps, noise, gamma
):
    """Min-SNR-weighted epsilon-prediction MSE for one batch."""
    alpha_bar = scheduler_alphas[timesteps].view(-1, 1, 1, 1)
    noisy = alpha_bar.sqrt() * latents + (1 - alpha_bar).sqrt() * noise
    hidden = text_encoder(token_ids).last_hidden_state
    pred = unet(noisy, timesteps, encoder_hidden_states=hidden).sample
    per_sample = (pred.float() - noise).pow(2).mean(dim=(1, 2, 3))
    snr = alpha_bar.view(-1) / (1 - alpha_bar.view(-1))
    weight = torch.clamp(snr, max=gamma) / snr if gamma > 0 else torch.ones_like(snr)
    return (weight * per_sample).mean(), per_sample.mean()


def train_diffusion(
    cfg: TrainConfig,
    latents: torch.Tensor,
    scenes: list[world.Scene],
    tokenizer,
    run_dir: Path | None,
    device: torch.device,
    on_step: Callable[[int, float], None] | None = None,
):
    """Stage 2: train text encoder + UNet jointly; returns (text_encoder, unet) with EMA weights."""
    torch.manual_seed(cfg.seed + 1)
    text_encoder = build_text_encoder(
        cfg.shape,
        len(tokenizer),
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    ).to(device)
    unet = build_unet(cfg.shape).to(device)
    params = list(text_encoder.parameters()) + list(unet.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    ema = [p.detach().clone() for p in params]
    alphas = build_scheduler().alphas_cumprod.to(device)
    tokens = CaptionTokens(tokenizer)
    path = run_dir / "diffusion.pt" if run_dir is not None else None
    start = 0
    if path is not None and path.exists():
        state = _load(path)
        text_encoder.load_state_dict(state["text_encoder"])
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        ema = [t.to(device) for t in state["ema"]]
        start = state["step"]
        log_line(f"diffusion: resuming at step {start}")
    loss_log = open(run_dir / "loss.csv", "a") if run_dir is not None else None  # noqa: SIM115 (closed below)
    last_save = time.monotonic()
    started = time.monotonic()
    text_encoder.train()
    unet.train()
    step = start
    for step in range(start, cfg.steps):
        rng = np.random.default_rng([cfg.seed, 2, step])
        indices = rng.integers(0, len(latents), cfg.batch)
        gen = torch.Generator().manual_seed(cfg.seed * 104_729 + step)
        timesteps = torch.randint(0, len(alphas), (cfg.batch,), generator=gen).to(device)
        noise = torch.randn((cfg.batch, *latents.shape[1:]), generator=gen)
        if cfg.noise_offset:
            # Offset noise: the schedule never fully hides an image's mean colour, so without
            # this the sky's colour follows the seed's noise instead of the prompt's time of day.
            noise = noise + cfg.noise_offset * torch.randn(
                (cfg.batch, latents.shape[1], 1, 1), generator=gen
            )
        noise = noise.to(device)
        batch = latents[torch.from_numpy(indices)].to(device)
        ids = tokens(batch_captions(cfg, scenes, indices, step)).to(device)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        loss, mse = diffusion_loss(
            unet, text_encoder, alphas, batch, ids, timesteps, noise, cfg.min_snr_gamma
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params, strict=True):
                e.lerp_(p.detach(), 1 - decay)
        if on_step is not None:
            on_step(step, loss.item())
        if loss_log is not None:
            loss_log.write(f"{step + 1},{loss.item():.5f},{mse.item():.5f}\n")
            if step % 20 == 0 or step + 1 == cfg.steps:
                loss_log.flush()
                rate = (time.monotonic() - started) / (step + 1 - start)
                eta = rate * (cfg.steps - step - 1) / 60
                log_line(
                    f"step {step + 1}/{cfg.steps} loss {loss.item():.4f} mse {mse.item():.4f} {rate:.2f}s/step eta {eta:.1f} min"
                )
        if path is not None and (
            step + 1 == cfg.steps or time.monotonic() - last_save > cfg.checkpoint_seconds
        ):
            state = {
                "text_encoder": text_encoder.state_dict(),
                "unet": unet.state_dict(),
                "optimizer": optimizer.state_dict(),
                "ema": [e.cpu() for e in ema],
                "step": step + 1,
            }
            _save_atomic(state, path)
            last_save = time.monotonic()
    if loss_log is not None:
        loss_log.close()
    with torch.no_grad():
        for e, p in zip(ema, params, strict=True):
            p.copy_(e)
    return text_encoder.eval(), unet.eval()


# --------------------------------------------------------------- export


def export(out: Path, tokenizer_dir: Path, text_encoder, unet, vae, preview: dict) -> None:
    """Write a standard diffusers Stable Diffusion-style folder."""
    out.mkdir(parents=True, exist_ok=True)
    write_tokenizer(out / "tokenizer")
    text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    build_scheduler().save_pretrained(out / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "preview.json").write_text(json.dumps(preview, indent=2) + "\n")


def run(cfg: TrainConfig, out: Path, run_dir: Path, device: torch.device) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    started = time.monotonic()
    log_line(f"device {device}, threads {torch.get_num_threads()}, config {asdict(cfg)}")
    images, scenes = world.sample_dataset(cfg.dataset_size, cfg.seed)
    log_line(f"rendered {len(images)} scenes")
    vae = train_vae(cfg, images, run_dir, device)
    latents_path = run_dir / "latents.pt"
    if latents_path.exists():
        raw = _load(latents_path)["latents"]
    else:
        raw = encode_dataset(vae, images, device)
        _save_atomic({"latents": raw}, latents_path)
    scaling = 1.0 / raw.std().item()
    vae.register_to_config(scaling_factor=round(scaling, 6))
    latents = raw * vae.config.scaling_factor
    log_line(f"latents {tuple(latents.shape)}, scaling factor {vae.config.scaling_factor}")
    tokenizer_dir = write_tokenizer(run_dir / "tokenizer")
    tokenizer = load_tokenizer(tokenizer_dir)
    text_encoder, unet = train_diffusion(cfg, latents, scenes, tokenizer, run_dir, device)
    preview = fit_preview(latents[:4000], images[:4000])
    export(out, tokenizer_dir, text_encoder.cpu(), unet.cpu(), vae.cpu(), preview)
    log_line(
        f"exported to {out} after {(time.monotonic() - started) / 60:.1f} min; preview fit rmse {preview['fit_rmse']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_PATH)
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / "runs/noise-world")
    parser.add_argument(
        "--steps", type=int, default=TrainConfig.steps, help="diffusion training steps"
    )
    parser.add_argument("--vae-steps", type=int, default=TrainConfig.vae_steps)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads; 1 is faster on a machine busy with other work",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(steps=args.steps, vae_steps=args.vae_steps, seed=args.seed)
    device = torch.device(args.device) if args.device else pick_device()
    run(cfg, args.out, args.run_dir, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
