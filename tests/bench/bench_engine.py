"""Engine vs a bare diffusers pipeline over the same components, measured side by side.

    .venv/bin/python tests/bench/bench_engine.py [--model PATH] [--steps 20] [--size 64x64] [--repeats 5]

Prints the median time of: the bare ``StableDiffusionPipeline.__call__`` (latent output),
the engine loop (per-step previews and checkpoints), the engine loop plus serialising
every checkpoint, the preview's share of a step, and resume time from step k relative to
a full run. Runs alternate A/B so both see the same machine load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from studio.engine.models import load_model  # noqa: E402
from studio.engine.preview import linear_preview  # noqa: E402
from studio.engine.recipe import Recipe  # noqa: E402
from studio.engine.sampler import Sampler  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--model", default=None, help="model folder (default: bundled, else a tiny random one)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--sampler", default="DPM++ 2M")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    ref = args.model
    if ref is None:
        from studio.engine.models import BUNDLED_PATH

        if (BUNDLED_PATH / "model_index.json").is_file():
            ref = "bundled"
        else:
            from tests.tiny_models import build_tiny_pipeline

            ref = str(build_tiny_pipeline(Path(tempfile.mkdtemp()) / "tiny"))
    model = load_model(ref, device=args.device)
    sampler = Sampler(model)
    width, height = (int(v) for v in args.size.split("x"))
    recipe = Recipe(
        "a red car on a mountain road at sunset",
        seed=1,
        steps=args.steps,
        guidance=7.0,
        sampler=args.sampler,
        width=width,
        height=height,
        model=ref,
    )

    from diffusers import StableDiffusionPipeline

    from studio.engine.schedulers import build_scheduler

    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=build_scheduler(args.sampler, model.scheduler_config, args.steps, model.device),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)

    def sync() -> None:
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    def run_pipeline() -> None:
        pipe(
            recipe.prompt,
            num_inference_steps=args.steps,
            guidance_scale=recipe.guidance,
            width=width,
            height=height,
            generator=torch.Generator("cpu").manual_seed(1),
            output_type="latent",
        )
        sync()

    def run_engine() -> None:
        for _ in sampler.run(recipe):
            pass
        sync()

    def run_engine_serialising() -> None:
        for step in sampler.run(recipe):
            step.checkpoint.to_bytes()
        sync()

    def run_pipeline_decoded() -> None:
        pipe(
            recipe.prompt,
            num_inference_steps=args.steps,
            guidance_scale=recipe.guidance,
            width=width,
            height=height,
            generator=torch.Generator("cpu").manual_seed(1),
            output_type="np",
        )
        sync()

    worker = _worker_on(model, sampler)

    def run_worker() -> None:
        worker.run(recipe)

    contenders = {
        "pipeline": run_pipeline,
        "engine": run_engine,
        "engine+bytes": run_engine_serialising,
        "pipeline+decode": run_pipeline_decoded,
        "worker": run_worker,
    }
    for fn in contenders.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, fn in contenders.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    median = {name: statistics.median(v) for name, v in times.items()}
    worker.stop()

    steps = list(sampler.run(recipe))
    latent = steps[len(steps) // 2].latent
    t = time.perf_counter()
    for _ in range(200):
        linear_preview(latent, model.preview_factors, model.preview_bias)
    sync()
    preview_ms = (time.perf_counter() - t) / 200 * 1000
    step_ms = median["engine"] / args.steps * 1000

    print(
        f"model {model.name} ({model.describe()}), {args.sampler}, {args.steps} steps, {width}x{height}, "
        f"median of {args.repeats}"
    )
    for name, value in median.items():
        print(
            f"  {name:14s} {value * 1000:8.1f} ms  {args.steps / value:7.1f} it/s  "
            f"ratio to pipeline {value / median['pipeline']:.3f}"
        )
    print(
        f"  worker vs pipeline+decode (both end on the VAE decode): "
        f"{median['worker'] / median['pipeline+decode']:.3f}"
    )
    print(
        f"  preview        {preview_ms:8.3f} ms per preview = {2 * preview_ms / step_ms * 100:.2f}% of a step "
        "(two previews per step)"
    )
    full = median["engine"]
    print("  resume from step k (fraction of a full run; ideal (N-k)/N):")
    for k in (0, args.steps // 4, args.steps // 2, 3 * args.steps // 4):
        runs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for _ in sampler.run(recipe, start=steps[k].checkpoint):
                pass
            sync()
            runs.append(time.perf_counter() - t)
        ideal = (args.steps - k - 1) / args.steps
        print(f"    k={k + 1:3d}: {statistics.median(runs) / full:.3f}  (ideal {ideal:.3f})")


class _WorkerRun:
    """The app's own path: a job through the in-process worker, every step's checkpoint
    serialised to bytes and posted as a protocol message, then the final decode. Each
    step is answered with FrameShown, as the window does once it has drawn it, and a run
    counts until the worker is idle again: the tiny previews of the steps the frame gate
    skipped (StepPreviews, sent after JobFinished) are part of its cost."""

    def __init__(self, model, sampler) -> None:
        import itertools
        import queue

        from studio.workers.local import LocalWorker

        self._done: queue.Queue = queue.Queue()
        self._ids = itertools.count(1)
        self.client = LocalWorker(load_model=lambda ref: model, make_sampler=lambda m: sampler)
        self.client.listen(self._on_message)
        self.client.start()

    def _on_message(self, message) -> None:
        from studio.protocol import FrameShown, JobFailed, JobFinished, PromptInfo, StepMade

        if isinstance(message, StepMade):
            self.client.send(FrameShown())
        if isinstance(message, (JobFinished, JobFailed, PromptInfo)):
            self._done.put(message)

    def run(self, recipe) -> None:
        from studio.protocol import Generate, JobFinished, PromptInfo, TokenInfo

        self.client.send(Generate(next(self._ids), "bench", recipe))
        message = self._done.get(timeout=600)
        assert isinstance(message, JobFinished), message
        self.client.send(TokenInfo((recipe.prompt,)))  # answered once the job's tail is done
        assert isinstance(self._done.get(timeout=600), PromptInfo)

    def stop(self) -> None:
        self.client.stop()


def _worker_on(model, sampler) -> _WorkerRun:
    return _WorkerRun(model, sampler)


if __name__ == "__main__":
    main()
