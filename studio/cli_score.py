"""``python main.py score IMAGE… --prompt P``: fidelity and novelty of images, headlessly.

One row per image (image, fidelity, novelty, and novelty among the images given),
scored by :mod:`studio.engine.scoring` with the bundled model unless ``--model``
names another. Each ``--plugin`` (:mod:`studio.engine.plugins`: a local CLIP folder,
an aesthetic head) adds one column named after it. Errors are one sentence with exit status 2, as for ``render``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def build_score_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py score",
        description="Score images for fidelity to a prompt and novelty, with the diffusion model itself.",
    )
    add = parser.add_argument
    add("images", nargs="+", type=Path, metavar="IMAGE", help="PNG, JPEG or WebP images")
    add("--prompt", required=True, help="the prompt the images should agree with")
    add(
        "--model",
        help="'bundled' (default), a diffusers folder, a .safetensors file or hf:org/name",
    )
    add("--model-config", help="local config folder for a single-file .safetensors model")
    add("--device", help="cpu, cuda, mps, optionally with :fp16/:bf16/:fp32")
    add("--timesteps", type=int, default=8, help="timesteps per score (cost); default 8")
    add("--noises", type=int, default=2, help="noises per timestep (cost); default 2")
    add("--seed", type=int, default=0, help="seed of the fixed noises; default 0")
    add(
        "--plugin",
        action="append",
        default=[],
        metavar="KIND=FOLDER",
        help="an optional local scorer, one column each: clip=/path/to/clip or "
        "aesthetic=/path/to/head,clip=/path/to/clip (never downloaded)",
    )
    add("--json", action="store_true", help="print one line of JSON")
    add("--debug", action="store_true", help="show tracebacks")
    return parser


def score_files(args: argparse.Namespace) -> dict[str, Any]:
    """Read, then score, every image; the JSON summary ``score --json`` prints."""
    from studio.document.imageio import read_image
    from studio.engine.plugins import PluginSpec, check_plugins, load_plugins
    from studio.engine.recipe import BUNDLED_MODEL
    from studio.engine.scoring import ScoreCost

    cost = ScoreCost(args.timesteps, args.noises, args.seed)
    cost.validate()  # before anything is loaded
    specs = [PluginSpec.parse(text) for text in args.plugin]
    check_plugins(specs)
    pixels = [read_image(path).pixels[..., :3] for path in args.images]

    import torch

    from studio.engine.models import load_model, studio_torch_threads
    from studio.engine.scoring import Scorer, context_novelty

    torch.set_num_threads(studio_torch_threads())
    started = time.perf_counter()
    model = load_model(
        args.model or BUNDLED_MODEL, device=args.device, config_dir=args.model_config
    )
    scorer = Scorer(model, cost)
    results = list(scorer.score_images(pixels, args.prompt))
    context = context_novelty([r.features for r in results])
    plugins = load_plugins(specs, device=model.device)
    extra = {plugin.name: plugin.score(pixels, args.prompt) for plugin in plugins}
    rows = [
        {
            "image": str(path),
            "fidelity": round(result.fidelity, 6),
            "novelty": round(result.novelty, 6),
            "novelty_unconditional": round(result.novelty_unconditional, 6),
            "context_novelty": round(float(contribution), 6),
            **{name: round(values[i], 6) for name, values in extra.items()},
        }
        for i, (path, result, contribution) in enumerate(
            zip(args.images, results, context.contributions, strict=True)
        )
    ]
    return {
        "scores": rows,
        "prompt": args.prompt,
        "model": model.name,
        "model_hash": model.model_hash,
        "timesteps": cost.timesteps,
        "noises": cost.noises,
        "seed": cost.seed,
        "plugins": [
            {"name": p.name, "description": p.description, "higher_is_better": p.higher_is_better}
            for p in plugins
        ],
        "unet_evaluations_per_image": cost.evaluations(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def score_main(argv: list[str] | None = None) -> int:
    """``score``: print one row per image; exit status 2 on a user error."""
    from studio.cli import _reporting_errors

    args = build_score_parser().parse_args(argv)
    status, summary = _reporting_errors(lambda: score_files(args), debug=args.debug)
    if status:
        return status
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    width = max(len("image"), *(len(row["image"]) for row in summary["scores"]))
    names = [plugin["name"] for plugin in summary["plugins"]]
    header = f"{'image':<{width}}  {'fidelity':>9}  {'novelty':>8}  {'in context':>10}"
    print(header + "".join(f"  {name:>10}" for name in names))
    for row in summary["scores"]:
        print(
            f"{row['image']:<{width}}  {row['fidelity']:>9.4f}  {row['novelty']:>8.4f}"
            f"  {row['context_novelty']:>10.4f}" + "".join(f"  {row[n]:>10.4f}" for n in names)
        )
    return 0
