"""Per-step previews of x0-hat against the full VAE decode of the same x0-hat, side by side.

    OMP_NUM_THREADS=1 .venv/bin/python tests/bench/bench_preview.py [--seeds 4] [--steps 20]

For the bundled model's tiny preview decoder and its linear latent→RGB map (scaled up
bilinearly to the image size, as the canvas shows it), prints the PSNR against the full
decode at every step averaged over seeds, the summary at 25/50/75/100% of the run, the
cost of each preview as a share of one denoising step (timed in the same run,
interleaved, one torch thread), the resulting live frame rate, and the PNG bytes per
stored step. Seeds are below the training runs' seeds (studio.training.preview_decoder).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from studio.document.imageio import encode_png  # noqa: E402
from studio.engine.models import load_model  # noqa: E402
from studio.engine.preview import (  # noqa: E402
    linear_preview,
    load_preview_decoder,
    tiny_preview,
)
from studio.engine.recipe import Recipe  # noqa: E402
from studio.engine.sampler import Sampler  # noqa: E402

PROMPTS = (
    "a red car on a mountain road at sunset",
    "a blue boat on the beach at noon",
    "a yellow balloon in the city at night",
    "a green house in the forest at dawn",
)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def upscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="Euler a")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decoder", type=Path, default=None, help="another AutoencoderTiny folder")
    parser.add_argument(
        "--sheets", type=Path, default=None, help="also write the README's two contact sheets here"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(device="cpu")
    if args.decoder is not None:
        model.preview_decoder = load_preview_decoder(args.decoder, 4, model.size_factor)
    decoder = model.preview_decoder
    if decoder is None:
        sys.exit("The bundled model has no preview decoder; train one first.")
    sampler = Sampler(model)
    tiny_db: list[list[float]] = [[] for _ in range(args.steps)]
    linear_db: list[list[float]] = [[] for _ in range(args.steps)]
    step_s, tiny_s, linear_s, png_bytes = [], [], [], []
    for seed in range(args.seeds):
        recipe = Recipe(
            prompt=PROMPTS[seed % len(PROMPTS)], seed=seed, steps=args.steps, sampler=args.sampler
        )
        # Side by side: each denoising step is timed on its own (with the decoder detached,
        # so the step computes only the two linear previews), then the tiny preview of that
        # step's x0-hat right after it, so both see the same machine load.
        model.preview_decoder = None
        run = sampler.run(recipe)
        steps = []
        while True:
            started = time.perf_counter()
            step = next(run, None)
            elapsed = time.perf_counter() - started
            if step is None:
                break
            steps.append(step)
            step_s.append(elapsed)
            tiny_s.append(timed(lambda x0=step.x0_pred: tiny_preview(decoder, x0), 3))
        model.preview_decoder = decoder
        size = (recipe.width, recipe.height)
        for step in steps:
            full = sampler.decode(step.x0_pred)
            tiny = tiny_preview(decoder, step.x0_pred)
            linear = upscale(
                linear_preview(step.x0_pred, model.preview_factors, model.preview_bias), size
            )
            tiny_db[step.index].append(psnr(tiny, full))
            linear_db[step.index].append(psnr(linear, full))
            png_bytes.append(len(encode_png(tiny)))
            x0 = step.x0_pred
            linear_s.append(
                timed(
                    lambda x0=x0: linear_preview(x0, model.preview_factors, model.preview_bias), 5
                )
            )
    step_only = statistics.median(step_s) - 2 * statistics.median(linear_s)
    shares = [
        t / (s - 2 * statistics.median(linear_s)) for t, s in zip(tiny_s, step_s, strict=True)
    ]
    tiny_ms, linear_ms = statistics.median(tiny_s) * 1e3, statistics.median(linear_s) * 1e3
    print(
        f"bundled model, {args.seeds} seeds x {args.steps} steps, {args.sampler}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    print("step  tiny dB  linear dB")
    for i in range(args.steps):
        print(f"{i + 1:4d}  {np.mean(tiny_db[i]):7.2f}  {np.mean(linear_db[i]):9.2f}")
    print("share of run  tiny dB  linear dB")
    for share in (0.25, 0.5, 0.75, 1.0):
        i = max(0, round(share * args.steps) - 1)
        print(f"{share:11.0%}  {np.mean(tiny_db[i]):7.2f}  {np.mean(linear_db[i]):9.2f}")
    first = max(0, round(0.25 * args.steps) - 1)
    worst = min(np.mean(tiny_db[i]) for i in range(first, args.steps))
    print(
        f"tiny decoder: last step {np.mean(tiny_db[-1]):.2f} dB (target >= 26), "
        f"worst from 25% on {worst:.2f} dB (target >= 22)"
    )
    print(
        f"denoising step {step_only * 1e3:.2f} ms; tiny preview {tiny_ms:.3f} ms "
        f"({statistics.median(shares):.1%} of a step, median of per-step ratios; target <= 5%); "
        f"linear preview {linear_ms:.3f} ms ({linear_ms / (step_only * 1e3):.1%})"
    )
    print(
        f"live frame rate with the tiny preview every step: "
        f"{1 / (step_only + tiny_ms / 1e3 + linear_ms / 1e3):.1f} steps/s "
        f"(linear only: {1 / (step_only + 2 * linear_ms / 1e3):.1f})"
    )
    print(f"stored tiny preview: {statistics.mean(png_bytes):.0f} PNG bytes per step")
    export_times(sampler)
    if args.sheets is not None:
        write_sheets(sampler, args.sheets)


def export_times(sampler: Sampler, steps: int = 30) -> None:
    """Time to export a 30-step trajectory from full decodes, as File > Export does."""
    from studio.document import export

    recipe = Recipe(prompt=PROMPTS[0], seed=0, steps=steps)
    x0 = [step.x0_pred for step in sampler.run(recipe)]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        frames = [sampler.decode(latent) for latent in x0]
        decoded = time.perf_counter() - started
        export.export_animation(frames, Path(folder) / "run.gif")
        gif = time.perf_counter() - started
        picks = np.linspace(0, steps - 1, 12).round().astype(int)
        started = time.perf_counter()
        sheet = [(int(i), sampler.decode(x0[i])) for i in picks]
        title = export.contact_sheet_title(recipe, "v1", "bench")
        export.export_contact_sheet(sheet, steps, Path(folder) / "sheet.png", recipe, title=title)
        contact = time.perf_counter() - started
    print(
        f"export of a {steps}-step trajectory from full decodes: GIF {gif:.2f} s "
        f"({decoded:.2f} s of it decoding), 12-step contact sheet {contact:.2f} s"
    )


def write_sheets(sampler: Sampler, folder: Path, steps: int = 30) -> None:
    """trajectory_sheet.png: an exported contact sheet (full decodes) of one 30-step run;
    preview_rows.png: the same steps as linear map / tiny decoder / full decode, top to bottom."""
    from studio.document import export

    model = sampler.model
    recipe = Recipe(prompt=PROMPTS[0], seed=1, steps=steps)
    run = list(sampler.run(recipe))
    picks = [int(i) for i in np.linspace(0, steps - 1, 8).round()]
    size = (recipe.width, recipe.height)
    full = {i: sampler.decode(run[i].x0_pred) for i in picks}
    full[steps - 1] = sampler.decode(run[-1].latent)  # the version's image, as exported
    title = export.contact_sheet_title(recipe, "v1", "noise-world")
    folder.mkdir(parents=True, exist_ok=True)
    frames = [(i, full[i]) for i in picks]
    export.export_contact_sheet(
        frames, steps, folder / "trajectory_sheet.png", recipe, title=title, columns=8, cell=128
    )
    rows = []
    for i in picks:
        linear = linear_preview(run[i].x0_pred, model.preview_factors, model.preview_bias)
        stack = [upscale(linear, size), run[i].preview_x0, full[i]]
        rows.append((i, np.concatenate(stack, axis=0)))
    rows_title = ["rows: linear map (16x16) · tiny decoder · full VAE decode", *title[1:]]
    export.export_contact_sheet(
        rows, steps, folder / "preview_rows.png", recipe, title=rows_title, columns=8, cell=192
    )
    print(f"wrote {folder / 'trajectory_sheet.png'} and {folder / 'preview_rows.png'}")


if __name__ == "__main__":
    main()
