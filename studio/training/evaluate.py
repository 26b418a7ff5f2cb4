"""Measure the bundled model honestly: ``python -m studio.training.evaluate``.

1. An attribute classifier (a small CNN with one head per attribute) is trained on
   *procedurally rendered* images only, never on generated ones, and cached.
2. Images are generated through the studio's own engine (``load_model`` + ``Sampler``)
   for held-in prompts and for held-out prompts (attribute combinations the model never
   saw in training), over several seeds.
3. Per-attribute accuracy is reported for both sets.
4. Diversity: the mean pairwise RMS pixel distance between seeds of the same prompt,
   compared with the same figure for real renders of that prompt.

Prints a table, writes JSON and a contact sheet (prompt x seed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from studio.engine.models import BUNDLED_PATH
from studio.training import world
from studio.training.train import REPO_ROOT, images_to_tensor, log_line

NAMES = tuple(world.ATTRIBUTES)


class AttributeClassifier(nn.Module):
    """A small CNN with one linear head per attribute."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)
            )

        self.features = nn.Sequential(
            block(3, 32), block(32, 64), block(64, 96), block(96, 128), nn.Flatten()
        )
        self.heads = nn.ModuleList(nn.Linear(128 * 16, len(v)) for v in world.ATTRIBUTES.values())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = F.dropout(self.features(x), 0.2, self.training)
        return [head(h) for head in self.heads]


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur and noise so the classifier does not depend on crisp edges that a VAE softens."""
    n = x.shape[0]
    scale = torch.randint(0, 3, (1,), generator=gen).item()
    if scale:
        size = x.shape[-1] // (2 * scale)
        x = F.interpolate(
            F.interpolate(x, size=size, mode="area"), size=x.shape[-1], mode="bilinear"
        )
    return x + 0.05 * torch.randn(x.shape, generator=gen) * torch.rand(n, 1, 1, 1, generator=gen)


def train_classifier(path: Path, steps: int = 700, seed: int = 0) -> AttributeClassifier:
    """Load the cached classifier or train it on fresh renders of every scene."""
    model = AttributeClassifier()
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    torch.manual_seed(seed)
    images, scenes = world.sample_dataset(12_000, seed=10_000 + seed, scenes=world.all_scenes())
    x_all = images_to_tensor(images)
    y_all = torch.tensor([s.labels() for s in scenes])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(x_all), (64,), generator=gen)
        logits = model(_augment(x_all[idx], gen))
        loss = sum(F.cross_entropy(lg, y_all[idx, k]) for k, lg in enumerate(logits))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            log_line(f"classifier step {step}/{steps} loss {loss.item():.3f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


@torch.no_grad()
def classify(model: AttributeClassifier, images: np.ndarray) -> np.ndarray:
    """Predicted class index per attribute, shape N x 4."""
    out = []
    for i in range(0, len(images), 256):
        logits = model(images_to_tensor(images[i : i + 256]))
        out.append(torch.stack([lg.argmax(1) for lg in logits], dim=1))
    return torch.cat(out).numpy()


def accuracy(
    model: AttributeClassifier, images: np.ndarray, scenes: list[world.Scene]
) -> dict[str, float]:
    predicted = classify(model, images)
    truth = np.array([s.labels() for s in scenes])
    return {name: float((predicted[:, k] == truth[:, k]).mean()) for k, name in enumerate(NAMES)}


@torch.no_grad()
def reconstruct(vae, images: np.ndarray) -> np.ndarray:
    """Encode and decode real renders: the best any generated image can look to the classifier."""
    x = images_to_tensor(images).to(vae.device, vae.dtype)
    y = vae.decode(vae.encode(x).latent_dist.mean).sample.float().clamp(-1, 1)
    return ((y + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def mean_pairwise_distance(images: np.ndarray) -> float:
    """Mean RMS distance (pixels in [0, 1]) over all pairs of images."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0
    pairs = list(itertools.combinations(range(len(x)), 2))
    return float(np.mean([np.sqrt(np.mean((x[i] - x[j]) ** 2)) for i, j in pairs]))


def pick_scenes(held_out: bool, count: int, seed: int) -> list[world.Scene]:
    pool = world.held_out_scenes() if held_out else world.training_scenes()
    rng = random.Random(seed)
    # Balanced over time of day so one value cannot dominate.
    by_time = {t: [s for s in pool if s.time == t] for t in world.TIMES}
    chosen = []
    for i in range(count):
        options = by_time[world.TIMES[i % len(world.TIMES)]]
        chosen.append(options.pop(rng.randrange(len(options))))
    return chosen


class Generator:
    """Generates through the studio engine (the same path as the app)."""

    def __init__(self, model_path: Path, steps: int, guidance: float, sampler: str) -> None:
        from studio.engine.models import load_model
        from studio.engine.sampler import Sampler

        self.model = load_model(str(model_path), device="cpu")
        self.sampler = Sampler(self.model)
        self.model_path = model_path
        self.settings = {"steps": steps, "guidance": guidance, "sampler": sampler}

    def __call__(self, prompt: str, seed: int, size: int = 64) -> np.ndarray:
        from studio.engine.recipe import Recipe

        recipe = Recipe(
            prompt=prompt,
            seed=seed,
            width=size,
            height=size,
            model=str(self.model_path),
            **self.settings,
        )
        _, image = self.sampler.render(recipe)
        return image


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], path: Path, scale: int = 2) -> None:
    """Prompt x seed grid with the prompt written to the left of each row."""
    cell = rows[0][1][0].shape[0] * scale
    label_w = 300
    sheet = Image.new("RGB", (label_w + cell * len(rows[0][1]), cell * len(rows)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        words, lines = label.split(), [""]
        for w in words:
            if len(lines[-1]) + len(w) > 40:
                lines.append("")
            lines[-1] = (lines[-1] + " " + w).strip()
        for k, line in enumerate(lines):
            draw.text((6, r * cell + 6 + 12 * k), line, fill=(230, 230, 230))
        for c, image in enumerate(images):
            tile = Image.fromarray(image).resize((cell, cell), Image.Resampling.NEAREST)
            sheet.paste(tile, (label_w + c * cell, r * cell))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def evaluate(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    torch.manual_seed(0)
    classifier = train_classifier(args.classifier)
    real_check, real_scenes = world.sample_dataset(1000, seed=77, scenes=world.held_out_scenes())
    report: dict = {
        "model": str(args.model),
        "settings": {
            "steps": args.steps,
            "guidance": args.guidance,
            "sampler": args.sampler,
            "seeds": args.seeds,
        },
        "classifier_on_real_held_out_renders": accuracy(classifier, real_check, real_scenes),
    }
    generate = Generator(args.model, args.steps, args.guidance, args.sampler)
    report["classifier_on_vae_reconstructions"] = accuracy(
        classifier, reconstruct(generate.model.vae, real_check[:300]), real_scenes[:300]
    )
    seeds = list(range(1, args.seeds + 1))
    for name, held_out in (("held_in", False), ("held_out", True)):
        scenes = pick_scenes(held_out, args.prompts, seed=5)
        images, labels, gen_div, real_div = [], [], [], []
        for scene in scenes:
            prompt = scene.caption()
            batch = [generate(prompt, seed) for seed in seeds]
            images += batch
            labels += [scene] * len(batch)
            real = np.stack([world.render(scene, seed=900_000 + s) for s in seeds])
            gen_div.append(mean_pairwise_distance(np.stack(batch)))
            real_div.append(mean_pairwise_distance(real))
        acc = accuracy(classifier, np.stack(images), labels)
        report[name] = {
            "prompts": len(scenes),
            "images": len(images),
            "accuracy": acc,
            "diversity_generated": float(np.mean(gen_div)),
            "diversity_real": float(np.mean(real_div)),
            "diversity_ratio": float(np.mean(gen_div) / np.mean(real_div)),
        }
        log_line(f"{name}: {acc}")
    sheet_scenes = [world.Scene("car", "red", "mountain road", "sunset")]
    sheet_scenes += pick_scenes(False, 3, seed=11)
    triples = sorted(world.held_out_triples())[::3][:4]
    sheet_scenes += [world.Scene(*triple, world.TIMES[i % 4]) for i, triple in enumerate(triples)]
    rows = []
    for scene in sheet_scenes:
        tag = " [held out]" if world.is_held_out(scene) else ""
        rows.append(
            (scene.caption() + tag, [generate(scene.caption(), seed) for seed in range(1, 7)])
        )
    rows.append(
        (
            "real renders: a red car on a mountain road at sunset",
            [world.render(sheet_scenes[0], s) for s in range(1, 7)],
        )
    )
    contact_sheet(rows, args.sheet)
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def print_table(report: dict) -> None:
    targets = {"time": 0.9, "place": 0.8, "subject": 0.75, "colour": 0.75}
    print(
        f"\n{'attribute':<10} {'held-in':>8} {'held-out':>9} {'target':>7} {'real':>6} {'VAE recon':>10}"
    )
    for name in NAMES:
        print(
            f"{name:<10} {report['held_in']['accuracy'][name]:>8.1%} {report['held_out']['accuracy'][name]:>9.1%}"
            f" {targets[name]:>7.0%} {report['classifier_on_real_held_out_renders'][name]:>6.1%}"
            f" {report['classifier_on_vae_reconstructions'][name]:>10.1%}"
        )
    for name in ("held_in", "held_out"):
        r = report[name]
        print(
            f"diversity {name}: generated {r['diversity_generated']:.3f} vs real {r['diversity_real']:.3f}"
            f" (ratio {r['diversity_ratio']:.2f}, target >= 0.50)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_PATH)
    parser.add_argument("--classifier", type=Path, default=REPO_ROOT / "runs/eval/classifier.pt")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "resources/docs/evaluation.json")
    parser.add_argument(
        "--sheet", type=Path, default=REPO_ROOT / "resources/docs/contact_sheet.png"
    )
    parser.add_argument(
        "--prompts", type=int, default=24, help="prompts per set (held-in, held-out)"
    )
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=7.0)
    parser.add_argument("--sampler", default="Euler a")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (1 is faster on a busy machine)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = evaluate(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {args.json} and {args.sheet} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
