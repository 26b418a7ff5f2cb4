"""Opening a big project: time, memory, and the cost of reading one stored step cold.

Run: ``.venv/bin/python tests/bench/bench_project_open.py --dir /tmp [--versions 1000] [--steps 30]``

1. Builds (once; cached in ``--dir`` and reused) a project of N versions x S
   steps at SD 1.5's latent size: every step holds real checkpoint bytes of a
   DPM++ 2M run (4x64x64 fp32 latent, fp16 x0 prediction, the scheduler's
   two-output history), 64x64 previews as the sampler makes them, and every
   version a 512x512 result. Every version is a root with all its steps
   stored (a branch would store fewer), so the file holds N x S steps. Rows are bulk-inserted without fsync; the file is
   then an ordinary project that ``ProjectStore.open`` checks as usual.
2. In a fresh subprocess: ``ProjectStore.open`` + ``Project.load`` + listing the
   tree (timed), resident memory added by opening (VmRSS before and after,
   after the imports), and the median time of ``tree.step(...)`` for a random
   stored step of a random version, each one not in the LRU cache.

Targets: open under 1 s, under 150 MB added, median cold step read under 16 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

OPEN_TARGET_S = 1.0
MEMORY_TARGET_MB = 150.0
SCRUB_TARGET_MS = 16.0
LATENT_SIDE = 64  # SD 1.5 at 512x512
SCRUB_READS = 400


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _run_checkpoints(steps: int) -> list[bytes]:
    """The checkpoint bytes of every step of a DPM++ 2M run at SD 1.5's latent size."""
    import torch

    from studio.engine.checkpoint import Checkpoint
    from studio.engine.recipe import Recipe
    from studio.engine.schedulers import build_scheduler, snapshot

    recipe = Recipe("a lighthouse at dusk", seed=7, steps=steps, sampler="DPM++ 2M")
    config = {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "epsilon",
    }
    scheduler = build_scheduler("DPM++ 2M", config, steps, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    shape = (1, 4, LATENT_SIDE, LATENT_SIDE)
    latent = torch.randn(shape, generator=generator)
    out = []
    for index, t in enumerate(scheduler.timesteps):
        noise_pred = torch.randn(shape, generator=generator)
        latent = scheduler.step(noise_pred, t, latent).prev_sample
        x0 = latent - noise_pred
        out.append(Checkpoint(recipe, index, latent, x0, snapshot(scheduler)).to_bytes())
    return out


def _previews(count: int) -> list[bytes]:
    import numpy as np

    from studio.document.imageio import encode_png

    rng = np.random.default_rng(1)
    side = LATENT_SIDE
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    out = []
    for _ in range(count):
        image = (ramp[None, :, None] * rng.uniform(0.3, 1.0, 3)) + rng.normal(
            0, 20, (side, side, 3)
        )
        out.append(encode_png(np.clip(image, 0, 255).astype(np.uint8)))
    return out


def _result_png() -> bytes:
    import numpy as np

    from studio.document.imageio import encode_png

    rng = np.random.default_rng(2)
    ramp = np.linspace(0, 255, 512, dtype=np.float32)
    image = ramp[:, None, None] * np.array([0.9, 0.6, 0.3]) + rng.normal(0, 6, (512, 512, 3))
    return encode_png(np.clip(image, 0, 255).astype(np.uint8))


def build(path: Path, versions: int, steps: int) -> None:
    from studio.document.store import ProjectStore
    from studio.engine.recipe import Recipe

    started = time.perf_counter()
    checkpoints = _run_checkpoints(steps)
    x0s, xts = _previews(steps), _previews(steps)
    result = _result_png()
    partial = path.with_name(path.name + ".building")
    partial.unlink(missing_ok=True)
    ProjectStore.create(partial).close()
    conn = sqlite3.connect(partial, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = OFF")
        per_transaction = 25
        for start in range(0, versions, per_transaction):
            conn.execute("BEGIN")
            for n in range(start, min(versions, start + per_transaction)):
                version_id = f"v{n:05d}"
                recipe = Recipe(f"a lighthouse, take {n}", seed=n, steps=steps, sampler="DPM++ 2M")
                conn.execute(
                    "INSERT INTO versions(id, name, recipe_json, created, finished, result_png)"
                    " VALUES (?, ?, ?, ?, 1, ?)",
                    (version_id, f"v{n + 1}", recipe.to_json(), 1e9 + n, result),
                )
                conn.executemany(
                    "INSERT INTO steps(version_id, idx, total, timestep, sigma, preview_x0,"
                    " preview_xt, checkpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (version_id, i, steps, 999.0 - i * 33, 14.6 / (i + 1), x0s[i], xts[i], cp)
                        for i, cp in enumerate(checkpoints)
                    ],
                )
            conn.execute("COMMIT")
    finally:
        conn.close()
    partial.replace(path)
    size = path.stat().st_size
    print(
        f"built {versions} versions x {steps} steps in {time.perf_counter() - started:.1f} s: "
        f"{size / 2**30:.2f} GiB, checkpoint {len(checkpoints[-1])} B, "
        f"previews {len(x0s[-1])} + {len(xts[-1])} B, result {len(result)} B"
    )


def measure(path: Path) -> dict[str, float]:
    """Runs in a fresh interpreter: nothing of the project is in this process yet."""
    from PySide6.QtCore import QCoreApplication

    from studio.document.project import Project
    from studio.document.store import ProjectStore

    app = QCoreApplication.instance() or QCoreApplication([])
    before = _rss_mb()
    started = time.perf_counter()
    store = ProjectStore.open(path)
    opened = time.perf_counter()
    project = Project.load(store)
    loaded = time.perf_counter()
    tree = project.tree
    listing = [(v.id, v.name, v.parent_id, len(v.step_indices)) for v in tree.versions()]
    roots = len(tree.roots())
    listed = time.perf_counter()
    after = _rss_mb()
    held = tree.steps.held_count()

    rng = random.Random(3)
    versions = tree.versions()
    picks: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    # distinct steps only, so a small project (--versions 20 --steps 3) reads all it has
    wanted = min(SCRUB_READS, sum(n for *_, n in listing))
    while len(picks) < wanted:
        version = rng.choice(versions)
        pick = (version.id, rng.choice(tree.trajectory(version.id)).index)
        owner = tree.step_owner(*pick).id
        if (owner, pick[1]) not in seen:  # never a step the LRU could already hold
            seen.add((owner, pick[1]))
            picks.append(pick)
    times = []
    for version_id, index in picks:
        t = time.perf_counter()
        record = tree.step(version_id, index)
        times.append((time.perf_counter() - t) * 1000)
        assert record.index == index and record.checkpoint and record.preview_x0.shape[2] == 3
    project.close()
    app.processEvents()
    return {
        "versions": float(len(listing)),
        "roots": float(roots),
        "steps": float(sum(n for *_, n in listing)),
        "open_s": opened - started,
        "load_s": loaded - opened,
        "list_s": listed - loaded,
        "total_s": listed - started,
        "rss_added_mb": after - before,
        "held_after_open": float(held),
        "scrub_reads": float(len(times)),
        "scrub_median_ms": statistics.median(times),
        "scrub_p95_ms": sorted(times)[int(len(times) * 0.95)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rebuild", action="store_true", help="build the cached project again")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return

    path = args.dir / f"noise-studio-bench-open-{args.versions}x{args.steps}.studio"
    if args.rebuild or not path.exists():
        build(path, args.versions, args.steps)
    else:
        print(f"reusing {path} ({path.stat().st_size / 2**30:.2f} GiB); --rebuild to make it again")
    child = subprocess.run(
        [sys.executable, __file__, "--measure", str(path)], capture_output=True, text=True
    )
    lines = child.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        sys.exit(f"the measuring process failed (rc {child.returncode}):\n{child.stderr[-2000:]}")
    if child.returncode:
        first_error = next((x for x in child.stderr.splitlines() if "Fatal" in x), "")
        print(
            f"note: the measuring process died after its figures (rc {child.returncode}): "
            f"{first_error}"
        )
    figures = json.loads(lines[-1])
    print(
        f"{figures['versions']:.0f} versions ({figures['roots']:.0f} roots), "
        f"{figures['steps']:.0f} own steps listed"
    )

    def verdict(ok: bool) -> str:
        return "ok" if ok else "OVER TARGET"

    total = figures["total_s"]
    print(
        f"open {figures['open_s']:.3f} s (checks) + load {figures['load_s']:.3f} s"
        f" + list {figures['list_s']:.3f} s = {total:.3f} s"
        f"  [target < {OPEN_TARGET_S} s: {verdict(total < OPEN_TARGET_S)}]"
    )
    added = figures["rss_added_mb"]
    print(
        f"resident memory added by opening: {added:.1f} MB"
        f"  [target < {MEMORY_TARGET_MB:.0f} MB: {verdict(added < MEMORY_TARGET_MB)}];"
        f" step records held after opening: {figures['held_after_open']:.0f}"
    )
    median = figures["scrub_median_ms"]
    print(
        f"read one stored step cold (tree.step, {figures['scrub_reads']:.0f} random): median {median:.2f} ms,"
        f" p95 {figures['scrub_p95_ms']:.2f} ms"
        f"  [target < {SCRUB_TARGET_MS:.0f} ms: {verdict(median < SCRUB_TARGET_MS)}]"
    )


if __name__ == "__main__":
    main()
