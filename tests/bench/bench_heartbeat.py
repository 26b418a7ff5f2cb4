"""Is the UI thread ever blocked during a generation? A 5 ms QTimer heartbeat says.

Opens the real window, starts a CPU generation and records the gaps between
heartbeat ticks from the first step to the end of the run (full decode included).
Target: maximum gap <= 50 ms.

    .venv/bin/python tests/bench/bench_heartbeat.py [--model REF] [--steps 30] [--size 64]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

from PySide6.QtCore import Qt, QTimer
from studio_window import fill_recipe, model_ref, open_window, percentile, wait_for  # type: ignore[import-not-found]

INTERVAL_MS = 5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"
    )
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from studio.protocol import JobFinished, StepMade

    ref = model_ref(args.model)
    _app, window = open_window(ref)
    fill_recipe(window, "a red fox in the snow at night", args.steps, args.size)
    ticks: list[float] = []
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(INTERVAL_MS)
    heartbeat.timeout.connect(lambda: ticks.append(time.perf_counter()))
    gaps: list[float] = []
    seconds: list[float] = []
    for _ in range(args.runs):
        wait_for(window, StepMade, window.generate)  # first step: the run is under way
        ticks.clear()
        heartbeat.start()
        began = time.perf_counter()
        wait_for(window, JobFinished)
        heartbeat.stop()
        seconds.append(time.perf_counter() - began)
        gaps += [(b - a) * 1000 for a, b in itertools.pairwise(ticks)]
    window.close()
    print(f"Qt platform: {_app.platformName()}")
    print(
        f"model: {window.model_label.text()}; {args.runs} runs of {args.steps} steps at {args.size}px"
    )
    print(f"run time after the first step: {', '.join(f'{s:.2f}' for s in seconds)} s")
    print(f"heartbeat every {INTERVAL_MS} ms: {len(gaps)} gaps")
    print(
        f"gap median {statistics.median(gaps):.1f} ms, p99 {percentile(gaps, 99):.1f} ms, "
        f"max {max(gaps):.1f} ms (target max <= 50 ms)"
    )


if __name__ == "__main__":
    main()
