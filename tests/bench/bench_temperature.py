"""What temperature does to a brood: diversity and prompt agreement against temperature.

    .venv/bin/python tests/bench/bench_temperature.py [--images 16] [--steps 20]
        [--sampler "Euler a"] [--temperatures 0.7,0.85,1,1.15,1.3]

For each temperature, the same seeds are rendered with the bundled model (batched), and
the finals are scored by the model's own denoising errors (studio.engine.scoring):
mean fidelity (prompt agreement), the Vendi score of their UNet features (the effective
number of distinct images) and the mean pairwise RMS distance of their pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from studio.engine.models import load_model, studio_torch_threads  # noqa: E402
from studio.engine.recipe import Recipe  # noqa: E402
from studio.engine.sampler import Sampler  # noqa: E402
from studio.engine.scoring import Scorer, vendi_score  # noqa: E402

PROMPT = "a red house by the sea"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="Euler a")
    parser.add_argument("--temperatures", default="0.7,0.85,1,1.15,1.3")
    args = parser.parse_args()
    torch.set_num_threads(studio_torch_threads())
    model = load_model("bundled")
    sampler, scorer = Sampler(model), Scorer(model)
    print(f"{args.images} seeds, {args.steps} steps, {args.sampler}, bundled model, '{PROMPT}'")
    print("temperature  fidelity  vendi  pixel-distance")
    for temperature in (float(t) for t in args.temperatures.split(",")):
        recipes = [
            Recipe(
                PROMPT,
                seed=seed,
                steps=args.steps,
                sampler=args.sampler,
                temperature=temperature,
                batch=8,
            )
            for seed in range(1, args.images + 1)
        ]
        latents: list[torch.Tensor] = []
        for start in range(0, len(recipes), 8):
            group = recipes[start : start + 8]
            finals: list[torch.Tensor] = [torch.empty(0)] * len(group)
            for position, step in sampler.run_batch(group):
                finals[position] = step.latent
            latents += finals
        images = np.stack([sampler.decode(latent).astype(np.float64) / 255.0 for latent in latents])
        scores = list(scorer.score(latents, PROMPT))
        fidelity = float(np.mean([s.fidelity for s in scores]))
        vendi = vendi_score(np.stack([s.features for s in scores]))
        flat = images.reshape(len(images), -1)
        distances = [
            np.sqrt(np.mean((flat[i] - flat[j]) ** 2))
            for i in range(len(flat))
            for j in range(i + 1, len(flat))
        ]
        print(f"{temperature:11.2f}  {fidelity:8.4f}  {vendi:5.2f}  {np.mean(distances):14.4f}")


if __name__ == "__main__":
    main()
