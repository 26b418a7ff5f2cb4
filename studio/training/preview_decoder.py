"""Distil a tiny preview decoder from the bundled model's VAE decoder.

``python -m studio.training.preview_decoder --out studio/resources/models/noise-world/preview_decoder``

The student is a diffusers ``AutoencoderTiny`` (TAESD's architecture) whose decoder
maps the UNet's latents (scaled, 4×16×16) straight to a 64×64 image: three stages of
equal width with two nearest-neighbour upsamplings. Only the decoder is trained and
used; the encoder is kept as small as the class allows, so the folder stays a standard
``AutoencoderTiny.from_pretrained`` layout.

The teacher is the bundled VAE's decoder, on two kinds of latents:

- **world latents:** procedural scenes (``studio.training.world``) encoded by the
  bundled VAE, the latents the diffusion model was trained on;
- **x0-hat latents:** the x0 predictions of every step of runs of the bundled model
  with the studio's own ``Sampler`` (several prompts, seeds, step counts and guidance
  values), which is what a preview decoder sees in use. Their early steps are blurry,
  off-manifold latents that a decoder trained on world latents alone gets wrong.

The target of every latent is the teacher's decode of that same latent, not the
rendered scene, because a preview should look like the full decode of the same step.
Latents and targets are cached under ``--run-dir``; training state is checkpointed
there every minute, and rerunning the same command resumes. Every batch is drawn from
a generator seeded by (seed, step), so a resumed run follows the same trajectory.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderTiny

from studio.engine.models import BUNDLED_PATH
from studio.training import world
from studio.training.train import _load, _save_atomic, images_to_tensor, log_line

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_FOLDER = BUNDLED_PATH
# Seeds at and above this are used for training runs; the benchmark uses seeds below it.
TRAIN_SEED_BASE = 10_000


@dataclass(frozen=True)
class DecoderShape:
    """Width and depth of the student. The cost is dominated by the two full-resolution convs."""

    channels: int = 16
    blocks: tuple[int, ...] = (3, 1, 0)
    latent_channels: int = 4


@dataclass(frozen=True)
class DistilConfig:
    """Everything that determines the trained preview decoder."""

    shape: DecoderShape = DecoderShape()
    seed: int = 0
    world_latents: int = 4000
    runs: int = 96
    steps: int = 8000
    batch: int = 16
    lr: float = 3e-3
    checkpoint_seconds: float = 60.0


def build_decoder(shape: DecoderShape) -> AutoencoderTiny:
    stages = len(shape.blocks)
    return AutoencoderTiny(
        in_channels=3,
        out_channels=3,
        encoder_block_out_channels=(4,) * stages,
        decoder_block_out_channels=(shape.channels,) * stages,
        num_encoder_blocks=(0,) * stages,
        num_decoder_blocks=shape.blocks,
        act_fn="relu",
        upsample_fn="nearest",
        latent_channels=shape.latent_channels,
        upsampling_scaling_factor=2,
        # The decoder reads the UNet's (scaled) latents directly, as TAESD does.
        scaling_factor=1.0,
        shift_factor=0.0,
    )


# ------------------------------------------------------------------ data


def _scaled_latents(vae, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = images_to_tensor(images[i : i + batch])
            out.append(vae.encode(x).latent_dist.mean * vae.config.scaling_factor)
    return torch.cat(out).float()


def _teacher_decode(vae, latents: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """The teacher's images in [-1, 1], stored as uint8 to keep the cache small."""
    out = []
    with torch.no_grad():
        for i in range(0, len(latents), batch):
            image = vae.decode(latents[i : i + batch] / vae.config.scaling_factor).sample
            out.append(((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    return torch.cat(out)


def _x0_latents(model_folder: Path, cfg: DistilConfig) -> torch.Tensor:
    """x0-hat of every step of ``cfg.runs`` partial-to-full runs of the bundled model."""
    from studio.engine.models import load_model
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler

    sampler = Sampler(load_model(str(model_folder), device="cpu"))
    rng = random.Random(cfg.seed)
    scenes = world.all_scenes()
    samplers = ("Euler a", "Euler", "DPM++ 2M")
    found = []
    for run in range(cfg.runs):
        recipe = Recipe(
            prompt=rng.choice(scenes).caption(rng) if rng.random() > 0.05 else "",
            seed=TRAIN_SEED_BASE + cfg.seed * 1000 + run,
            steps=rng.choice((8, 12, 20, 30)),
            guidance=rng.choice((3.0, 5.0, 7.0, 7.0, 9.0)),
            sampler=samplers[run % len(samplers)],
        )
        found.extend(step.x0_pred.float().cpu() for step in sampler.run(recipe))
        if run % 16 == 0:
            log_line(f"x0-hat runs {run + 1}/{cfg.runs}: {len(found)} latents")
    return torch.cat(found)


def build_dataset(model_folder: Path, cfg: DistilConfig, run_dir: Path):
    """(latents, teacher images as uint8), cached in ``run_dir/data.pt``."""
    path = run_dir / "data.pt"
    if path.exists():
        data = _load(path)
        return data["latents"], data["targets"]
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(model_folder / "vae", use_safetensors=True).eval()
    images, _ = world.sample_dataset(cfg.world_latents, cfg.seed + 7)
    world_latents = _scaled_latents(vae, images)
    log_line(f"encoded {len(world_latents)} world renders")
    x0 = _x0_latents(model_folder, cfg)
    log_line(f"collected {len(x0)} x0-hat latents")
    latents = torch.cat([world_latents, x0])
    targets = _teacher_decode(vae, latents)
    _save_atomic({"latents": latents, "targets": targets}, path)
    return latents, targets


# ------------------------------------------------------------------ training


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


def train(cfg: DistilConfig, latents: torch.Tensor, targets: torch.Tensor, run_dir: Path):
    torch.manual_seed(cfg.seed)
    model = build_decoder(cfg.shape)
    decoder = model.decoder
    optimizer = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    path = run_dir / "state.pt"
    start = 0
    if path.exists():
        state = _load(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        log_line(f"resuming at step {start}")
    # A fixed held-out slice (every 20th latent) reports progress honestly.
    held = torch.arange(len(latents)) % 20 == 0
    train_index = torch.nonzero(~held).flatten()
    held_latents, held_targets = latents[held][:256], targets[held][:256].float() / 127.5 - 1
    last_save = time.monotonic()
    started = time.monotonic()
    decoder.train()
    for step in range(start, cfg.steps):
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        pick = train_index[torch.randint(0, len(train_index), (cfg.batch,), generator=gen)]
        x = latents[pick]
        y = targets[pick].float() / 127.5 - 1
        if torch.rand((), generator=gen) < 0.5:  # the world and the teacher are mirror-symmetric
            x, y = x.flip(-1), y.flip(-1)
        lr = cfg.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for group in optimizer.param_groups:
            group["lr"] = max(lr, cfg.lr * 0.01)
        out = decoder(x)
        loss = F.mse_loss(out, y) + 0.5 * F.l1_loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1 == cfg.steps
        if step % 100 == 0 or done:
            decoder.eval()
            with torch.no_grad():
                held_psnr = psnr(decoder(held_latents).clamp(-1, 1), held_targets)
            decoder.train()
            rate = (time.monotonic() - started) / (step + 1 - start)
            log_line(
                f"step {step + 1}/{cfg.steps} loss {loss.item():.4f} held-out {held_psnr:.2f} dB "
                f"{rate * 1000:.0f} ms/step eta {rate * (cfg.steps - step - 1) / 60:.1f} min"
            )
        if done or time.monotonic() - last_save > cfg.checkpoint_seconds:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step + 1,
            }
            _save_atomic(state, path)
            last_save = time.monotonic()
    return model.eval().requires_grad_(False)


def export(model: AutoencoderTiny, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_FOLDER / "preview_decoder")
    parser.add_argument("--model", type=Path, default=BUNDLED_FOLDER, help="the teacher model")
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / "runs/preview-decoder")
    parser.add_argument("--steps", type=int, default=DistilConfig.steps)
    parser.add_argument("--runs", type=int, default=DistilConfig.runs, help="x0-hat runs")
    parser.add_argument("--seed", type=int, default=DistilConfig.seed)
    parser.add_argument("--channels", type=int, default=DecoderShape.channels)
    parser.add_argument(
        "--blocks", default=",".join(map(str, DecoderShape.blocks)), help="blocks per stage"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = DecoderShape(args.channels, tuple(int(b) for b in args.blocks.split(",")))
    cfg = DistilConfig(shape=shape, steps=args.steps, runs=args.runs, seed=args.seed)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    latents, targets = build_dataset(args.model, cfg, args.run_dir)
    log_line(f"dataset: {len(latents)} latents")
    model = train(cfg, latents, targets, args.run_dir)
    export(model, args.out)
    log_line(f"exported to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
