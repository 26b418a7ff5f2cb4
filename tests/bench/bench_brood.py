"""Brood throughput: 16 children one at a time against the same 16 in UNet batches, side by side.

    .venv/bin/python tests/bench/bench_brood.py [--children 16] [--batch 8] [--steps 20]
        [--size 64x64] [--sampler "Euler a"] [--repeats 3] [--device cpu]

Both sides run the engine loop (per-step previews and checkpoints included) and the final
decode, on the bundled model, alternating so both see the same machine load. Prints the
median seconds of each, the throughput ratio, and whether every batched child's final image
equals its lone run's (a child of a batch records the batch, so its lone run pads to it).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from studio.engine.breeding import brood  # noqa: E402
from studio.engine.models import load_model, studio_torch_threads  # noqa: E402
from studio.engine.recipe import Recipe  # noqa: E402
from studio.engine.sampler import Sampler  # noqa: E402


def _sha(image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--sampler", default="Euler a")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    torch.set_num_threads(studio_torch_threads())
    width, height = (int(v) for v in args.size.split("x"))
    model = load_model("bundled", device=args.device)
    sampler = Sampler(model)
    base = Recipe("a red house by the sea", steps=args.steps, sampler=args.sampler)
    base = base.with_changes(width=width, height=height)
    children = brood(base, ((11, 1.0), (22, 1.0)), args.children, 0.3, brood_seed=11)
    batched = [c.with_changes(batch=args.batch) for c in children]

    def sequential() -> list[str]:
        return [_sha(sampler.decode(list(sampler.run(c))[-1].latent)) for c in children]

    def in_batches() -> list[str]:
        shas = []
        for start in range(0, len(batched), args.batch):
            group = batched[start : start + args.batch]
            latents = [None] * len(group)
            for position, step in sampler.run_batch(group):
                latents[position] = step.latent
            shas += [_sha(sampler.decode(latent)) for latent in latents]
        return shas

    sequential()  # warm-up: prompt encoding cached, allocator warm
    in_batches()
    times: dict[str, list[float]] = {"sequential": [], "batched": []}
    batched_shas: list[str] = []
    for _ in range(args.repeats):
        for name, work in (("sequential", sequential), ("batched", in_batches)):
            started = time.perf_counter()
            shas = work()
            times[name].append(time.perf_counter() - started)
            if name == "batched":
                batched_shas = shas
    lone = [_sha(sampler.decode(list(sampler.run(c))[-1].latent)) for c in batched]
    seq, bat = statistics.median(times["sequential"]), statistics.median(times["batched"])
    print(
        f"{args.children} children, {args.steps} steps, {args.size}, {args.sampler}, "
        f"{model.device.type}/{str(model.dtype).removeprefix('torch.')}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"sequential: {seq:.2f} s ({args.children / seq:.2f} images/s)")
    print(f"batch {args.batch}:   {bat:.2f} s ({args.children / bat:.2f} images/s)")
    print(f"throughput ratio: {seq / bat:.2f}x")
    print(f"batched children equal their lone runs: {lone == batched_shas}")
    print(
        f"batch changes low bits against batch 1: {sum(a != b for a, b in zip(lone, sequential(), strict=True))} of {args.children} images differ"
    )


if __name__ == "__main__":
    main()
