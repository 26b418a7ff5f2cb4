"""A 16-child brood from the window's session, in UNet batches against one job at a time,
side by side in one process on the bundled model (the in-process worker, every step's
checkpoint serialised and streamed, each child decoded, as in the window).

    OMP_NUM_THREADS=1 QT_QPA_PLATFORM=offscreen .venv/bin/python tests/bench/bench_window_brood.py \
        [--children 16] [--batch 8] [--steps 20] [--repeats 3]

Alternates the two so both see the same machine load; prints the median seconds from
``Session.breed`` to the last child finished, the throughput ratio, and whether each
batched child's pixels equal its recipe rendered alone (the recipe records its batch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from studio.engine.recipe import Recipe
    from studio.protocol import JobFinished, ModelLoaded
    from studio.session import Session
    from studio.workers.local import LocalWorker

    app = QApplication.instance() or QApplication([])
    session = Session(LocalWorker())

    def run_until(done, timeout_s=1800):
        loop = QEventLoop()
        timer = QTimer(interval=5)
        timer.timeout.connect(lambda: done() and loop.quit())
        timer.start()
        QTimer.singleShot(timeout_s * 1000, loop.quit)
        loop.exec()
        timer.stop()

    loaded = []
    session.message_handled.connect(lambda m: isinstance(m, ModelLoaded) and loaded.append(m))
    session.start()
    run_until(lambda: loaded)
    finished: set[str] = set()
    session.message_handled.connect(
        lambda m: isinstance(m, JobFinished) and finished.add(m.version_id)
    )
    recipe = Recipe("a red house by the sea", seed=11, steps=args.steps, sampler="Euler a")
    session.generate(recipe)
    run_until(lambda: finished)
    parent = next(iter(finished))

    def brood(batch: int) -> tuple[float, list[str]]:
        session.batch_size = batch
        finished.clear()
        started = time.perf_counter()
        children = session.breed([parent], children=args.children, dose=0.3, brood_seed=7)
        run_until(lambda: finished.issuperset(children))
        return time.perf_counter() - started, children

    brood(args.batch)  # warm-up
    times: dict[int, list[float]] = {1: [], args.batch: []}
    batched: list[str] = []
    for _ in range(args.repeats):
        for batch in (1, args.batch):
            seconds, children = brood(batch)
            times[batch].append(seconds)
            if batch == args.batch:
                batched = children
    from studio.engine.models import load_model
    from studio.engine.sampler import Sampler

    sampler = Sampler(load_model("bundled"))
    same = all(
        np.array_equal(sampler.render(session.tree.get(c).recipe)[1], session.tree.result(c))
        for c in batched[: args.batch]
    )
    one, many = statistics.median(times[1]), statistics.median(times[args.batch])
    print(f"{args.children} children, {args.steps} steps, 64x64, Euler a, window session")
    print(f"one job at a time: {one:.2f} s ({args.children / one:.2f} images/s)")
    print(f"batch {args.batch}:           {many:.2f} s ({args.children / many:.2f} images/s)")
    print(f"throughput ratio: {one / many:.2f}x")
    print(f"recorded batch: {session.tree.get(batched[0]).recipe.batch}")
    print(f"batched children equal their recipes rendered alone: {same}")
    session.shutdown()
    app.quit()


if __name__ == "__main__":
    main()
