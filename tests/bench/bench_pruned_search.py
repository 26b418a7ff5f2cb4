"""Early-pruned search on the bundled model: 32 candidates to 30 % of the run, ranked by the
model's own scores at that step, the best 4 continued exactly. Reports the denoising steps
run against 32 full runs, and the wall time beside 32 full runs measured in the same process.

    OMP_NUM_THREADS=1 QT_QPA_PLATFORM=offscreen .venv/bin/python tests/bench/bench_pruned_search.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--keep", type=int, default=4)
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from studio.engine.recipe import Recipe
    from studio.protocol import JobFinished, ModelLoaded
    from studio.search import PrunedSearch
    from studio.session import Session
    from studio.workers.local import LocalWorker

    app = QApplication.instance() or QApplication([])
    session = Session(LocalWorker())

    def wait(signal, accept=lambda *a: True, timeout_s=1800):
        loop, got = QEventLoop(), []

        def on(*a):
            if accept(*a):
                got.append(a)
                loop.quit()

        signal.connect(on)
        QTimer.singleShot(timeout_s * 1000, loop.quit)
        loop.exec()
        signal.disconnect(on)
        return got[0] if got else None

    session.start()
    wait(session.message_handled, lambda m: isinstance(m, ModelLoaded))
    recipe = Recipe("a red car on a mountain road at sunset", seed=1000, steps=args.steps)
    search = PrunedSearch(session, recipe, args.candidates, args.keep, args.fraction)
    began = time.perf_counter()
    search.start()
    (report,) = wait(search.finished)
    searched = time.perf_counter() - began

    began = time.perf_counter()
    for candidate in search.recipes:  # the same candidates run to the end, one by one
        session.generate(candidate)
        wait(session.message_handled, lambda m: isinstance(m, JobFinished))
    full = time.perf_counter() - began
    session.shutdown()
    print(
        f"bundled model, {args.candidates} candidates × {args.steps} steps, pruned at step "
        f"{report.prune_step}, {args.keep} kept (one thread)"
    )
    print(
        f"  denoising steps: {report.steps_run} of {report.full_cost} "
        f"({report.share_of_full_runs:.1%} of full runs)"
    )
    print(
        f"  wall time: search {searched:.1f} s (scoring included) vs {full:.1f} s for full runs "
        f"({searched / full:.1%})"
    )
    app.quit()


if __name__ == "__main__":
    main()
