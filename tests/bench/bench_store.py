"""Project store figures: bytes per step/version, and a 1,000-version x 30-step project.

Run: ``nice -n 10 .venv/bin/python tests/bench/bench_store.py [--versions 1000] [--steps 30]``

1. Real checkpoint sizes: a DPM++ 2M run on a tiny random SD-shaped pipeline
   at the bundled model's latent size (4x16x16) and at SD 1.5's (4x64x64);
   the checkpoint bytes are exactly what the engine writes for those shapes
   (the UNet's size does not change them).
2. A synthetic project of N versions x S steps with blobs of those sizes:
   file size, open time (with its integrity check), tree listing, scrub
   latency (one step's preview), checkpoint fetch, and the commit latency of
   one step (fsync included).
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from studio.document.imageio import encode_png  # noqa: E402
from studio.document.store import ProjectStore  # noqa: E402
from studio.protocol import StepRecord  # noqa: E402


@dataclass(frozen=True)
class StepSample:
    """One real step of a DPM++ 2M run at one latent size, as the store receives it."""

    checkpoint: bytes
    preview_x0: np.ndarray
    preview_xt: np.ndarray
    latent_fp32: int
    state_keys: list[str]

    @property
    def x0_png(self) -> bytes:
        return encode_png(self.preview_x0)

    @property
    def xt_png(self) -> bytes:
        return encode_png(self.preview_xt)


def measure_checkpoints(folder: Path) -> dict[str, StepSample]:
    from studio.engine.models import load_model
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler
    from tests.tiny_models import build_tiny_pipeline

    sampler = Sampler(load_model(str(build_tiny_pipeline(folder / "tiny")), device="cpu"))
    factor = sampler.model.size_factor
    out = {}
    for label, side in (("bundled 4x16x16", 16), ("SD-1.5 4x64x64", 64)):
        recipe = Recipe(
            "a house",
            seed=3,
            steps=4,
            sampler="DPM++ 2M",
            width=side * factor,
            height=side * factor,
        )
        steps = list(sampler.run(recipe))
        step = steps[2]  # history is full from the second step on
        out[label] = StepSample(
            checkpoint=step.checkpoint.to_bytes(),
            preview_x0=step.preview_x0,
            preview_xt=step.preview_xt,
            latent_fp32=step.latent.numel() * 4,
            state_keys=sorted(step.checkpoint.scheduler_state),
        )
    return out


def build_project(path: Path, versions: int, steps: int, sample: StepSample) -> float:
    """Fill a project, one transaction per version; returns seconds."""
    rng = random.Random(0)
    blob, x0, xt = sample.checkpoint, sample.x0_png, sample.xt_png
    started = time.perf_counter()
    with ProjectStore.create(path) as store:
        ids: list[str] = []
        for n in range(versions):
            vid = f"v{n:05d}"
            parent = rng.choice(ids) if ids and rng.random() < 0.6 else None
            branch = rng.randrange(steps - 1) if parent else None
            first = 0 if branch is None else branch + 1
            result = os.urandom(1) * 30_000

            def write(
                conn: sqlite3.Connection,
                vid: str = vid,
                parent: str | None = parent,
                branch: int | None = branch,
                first: int = first,
                result: bytes = result,
            ) -> None:
                conn.execute(
                    "INSERT INTO versions(id, parent_id, branch_step, name, recipe_json, created,"
                    " finished, result_png) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
                    (vid, parent, branch, vid, '{"prompt": "bench"}', time.time(), result),
                )
                conn.executemany(
                    "INSERT INTO steps(version_id, idx, total, timestep, preview_x0, preview_xt,"
                    " checkpoint) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(vid, i, steps, 1000 - i, x0, xt, blob) for i in range(first, steps)],
                )

            store.submit(write)
            ids.append(vid)
        store.flush()
    return time.perf_counter() - started


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def summary(ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"median {statistics.median(ms):.3f} ms, p99 {p99:.3f} ms, max {ms[-1]:.3f} ms"


def bench_project(folder: Path, label: str, versions: int, steps: int, sample: StepSample) -> None:
    path = folder / f"bench-{label.split()[0]}.studio"
    build_s = build_project(path, versions, steps, sample)
    size = path.stat().st_size
    print(f"\n[{label}] {versions} versions x {steps} steps: built in {build_s:.1f} s")
    print(f"  file size {size / 2**20:.1f} MiB ({size / versions / 2**20:.2f} MiB per version)")

    opens = timed(lambda: ProjectStore.open(path).close(), 3)
    print(f"  open + integrity check + close: {summary(opens)}")
    store = ProjectStore.open(path)
    try:
        print(f"  list the tree (versions()): {summary(timed(store.versions, 20))}")
        print(
            f"  snapshot (tree + step indices + one preview each + layers): {summary(timed(store.snapshot, 5))}"
        )
        rng = random.Random(1)
        records = store.versions()
        picks = []
        for _ in range(500):
            v = rng.choice(records)
            first = 0 if v.branch_step is None else v.branch_step + 1
            picks.append((v.id, rng.randrange(first, steps)))
        it = itertools.cycle(picks)
        print(
            f"  scrub: one step's preview (PNG bytes): {summary(timed(lambda: store.step_preview(*next(it)), 500))}"
        )
        print(
            f"  scrub: one step's preview decoded to an array: "
            f"{summary(timed(lambda: store.step_preview_image(*next(it)), 500))}"
        )
        print(
            f"  one step's checkpoint bytes: {summary(timed(lambda: store.step_checkpoint(*next(it)), 500))}"
        )
        print(
            f"  step indices of one version: {summary(timed(lambda: store.step_indices(next(it)[0]), 200))}"
        )
        print(
            f"  one whole step (checkpoint + both previews decoded): "
            f"{summary(timed(lambda: store.step(*next(it)), 500))}"
        )
        vid = store.add_version(recipe_json="{}", name="timing").result()
        counter = iter(range(steps))
        x0, xt = sample.preview_x0, sample.preview_xt

        def one_step() -> None:
            i = next(counter)
            store.append_step(
                vid, StepRecord(i, steps, i, None, sample.checkpoint, x0, xt)
            ).result()

        print(f"  append one step, committed with fsync: {summary(timed(one_step, steps))}")
    finally:
        store.close()
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sd15-versions", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        sizes = measure_checkpoints(folder)
        print("Bytes stored per step (DPM++ 2M, history full; checkpoint = engine's safetensors):")
        for label, s in sizes.items():
            per_step = len(s.checkpoint) + len(s.x0_png) + len(s.xt_png)
            print(
                f"  {label}: checkpoint {len(s.checkpoint)} B"
                f" (zlib-1 would give {len(zlib.compress(s.checkpoint, 1))} B), "
                f"previews {len(s.x0_png)} + {len(s.xt_png)} B PNG, "
                f"one fp32 latent {s.latent_fp32} B, state {s.state_keys}"
            )
            print(
                f"    = {per_step} B per step, {per_step * args.steps / 2**20:.2f} MiB per {args.steps}-step version"
            )
        bench_project(
            folder, "bundled 4x16x16", args.versions, args.steps, sizes["bundled 4x16x16"]
        )
        if args.sd15_versions:
            bench_project(
                folder, "SD-1.5 4x64x64", args.sd15_versions, args.steps, sizes["SD-1.5 4x64x64"]
            )


if __name__ == "__main__":
    main()
