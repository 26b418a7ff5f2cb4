"""Scrub latency: slider change -> canvas updated and repainted.

Generates one run, then moves the timeline slider to random stored steps and
times each move up to the end of a synchronous repaint of the canvas.
Target: median <= 16 ms.

    .venv/bin/python tests/bench/bench_scrub.py [--model REF] [--steps 40] [--size 64] [--moves 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from studio_window import fill_recipe, model_ref, open_window, percentile, wait_for  # type: ignore[import-not-found]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--moves", type=int, default=300)
    args = parser.parse_args()
    from studio.protocol import JobFinished

    app, window = open_window(model_ref(args.model))
    fill_recipe(window, "a red fox in the snow at night", args.steps, args.size)
    wait_for(window, JobFinished, window.generate)
    app.processEvents()
    rng = random.Random(0)
    latencies: list[float] = []
    position = window.timeline.position()
    for _ in range(args.moves):
        target = rng.randrange(window.timeline.count())
        while target == position:
            target = rng.randrange(window.timeline.count())
        began = time.perf_counter()
        window.timeline.slider.setValue(target)
        window.canvas.viewport().repaint()
        latencies.append((time.perf_counter() - began) * 1000)
        assert window.canvas.current_array() is not None
        position = target
        app.processEvents()  # let settled decodes and paints run between moves, as in real use
    window.close()
    print(f"Qt platform: {app.platformName()}")
    print(
        f"model: {window.model_label.text()}; {args.steps} steps at {args.size}px; {args.moves} moves"
    )
    print(
        f"slider change -> canvas repainted: median {statistics.median(latencies):.2f} ms, "
        f"p95 {percentile(latencies, 95):.2f} ms, max {max(latencies):.2f} ms (target median <= 16 ms)"
    )


if __name__ == "__main__":
    main()
