"""Latest wins for the tiny-decoder preview: what it costs per step and how many frames it gives.

A 30-step run through the in-process worker with a UI that draws every step it gets
(FrameShown after each StepMade): the worker spends the tiny decoder on at most
FRAME_RATE steps a second and on the last step, the linear map on the rest. Reports the
preview frames a second and the preview's average cost as a share of a denoising step,
beside a run whose every step gets the tiny decoder.

    OMP_NUM_THREADS=1 .venv/bin/python tests/bench/bench_preview_rate.py [--steps 30] [--repeats 3]
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
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    from studio.engine.models import load_model
    from studio.engine.preview import linear_preview, preview_image
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler
    from studio.protocol import FrameShown, Generate, JobFinished, StepMade
    from studio.workers.local import FRAME_RATE, LocalWorker

    torch.set_num_threads(1)
    model = load_model("bundled", device="cpu")
    sampler = Sampler(model)
    recipe = Recipe("a red car on a mountain road at sunset", seed=3, steps=args.steps)
    x0 = list(sampler.run(recipe))[args.steps // 2].x0_pred

    def per_call(fn, n=200) -> float:
        fn()
        began = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - began) / n

    tiny_s = per_call(lambda: preview_image(model, x0))
    linear_s = per_call(lambda: linear_preview(x0, model.preview_factors, model.preview_bias))

    def worker_run() -> tuple[float, int, int]:
        messages: list[object] = []
        client = LocalWorker(load_model=lambda ref: model, make_sampler=lambda m: Sampler(m))

        def on_message(message) -> None:
            messages.append(message)
            if isinstance(message, StepMade):
                client.send(FrameShown())  # the UI drew it at once

        client.listen(on_message)
        client.start()
        began = time.perf_counter()
        client.send(Generate(1, "bench", recipe))
        while not any(isinstance(m, JobFinished) for m in messages):
            time.sleep(0.002)
        elapsed = time.perf_counter() - began
        client.stop()
        shapes = [m.step.preview_x0.shape[:2] for m in messages if isinstance(m, StepMade)]
        tiny = sum(shape[0] == recipe.height for shape in shapes)
        return elapsed, tiny, len(shapes)

    runs = [worker_run() for _ in range(args.repeats)]
    elapsed = statistics.median(r[0] for r in runs)
    tiny = statistics.median(r[1] for r in runs)
    steps = runs[0][2]
    step_s = elapsed / steps
    share_every = tiny_s / step_s
    share_gated = (tiny * tiny_s + (steps - tiny) * linear_s) / steps / step_s
    print(f"bundled model, {steps} steps, one thread, median of {args.repeats}")
    print(f"  step                  {step_s * 1000:7.2f} ms")
    print(f"  tiny preview          {tiny_s * 1000:7.2f} ms = {share_every * 100:.1f}% of a step")
    print(f"  linear preview        {linear_s * 1000:7.3f} ms")
    print(
        f"  latest wins (<= {FRAME_RATE}/s): {tiny:.0f} of {steps} steps tiny, "
        f"{tiny / elapsed:.1f} preview frames/s, average {share_gated * 100:.1f}% of a step"
    )


if __name__ == "__main__":
    main()
