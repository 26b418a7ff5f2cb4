"""SD 1.5-sized random weights on CPU: speed against diffusers, load memory, hash cache.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python tests/bench/bench_real_models.py \\
        [--steps 2] [--size 512] [--repeats 3] [--workdir DIR] [--keep]

Builds the real SD 1.5 component configs (UNet 859.5 M parameters, VAE 83.7 M, text
encoder 123.1 M with the 49,408-row embedding; a character tokenizer, as nothing is
downloaded) with random weights, writes them once as a diffusers folder and as an
original-format single file (``tests/original_format.py``), then measures, each phase
in a fresh subprocess so one phase's memory never inflates another's:

- render: the engine's sampling loop against a bare ``StableDiffusionPipeline`` over
  the same components (same scheduler config, same start noise, latent output),
  interleaved A/B after one warm-up each, median of ``--repeats`` of wall and of CPU
  time (the process's, steadier than wall time on a shared machine); the final
  latents must be equal;
- load memory: peak RSS (``VmHWM`` from /proc/self/status) of ``load_model`` on the
  folder and on the single file, each in its own process, right after the load and
  after every weight has been read once (weights read from safetensors can stay
  unread pages of a memory map until first use), with the anonymous / file-backed
  split;
- hash cache: ``load_model`` then ``model.model_hash`` (what a render's metadata
  needs) with an empty hash cache and again with the cache it left behind.

The weights (4.3 GB in fp32) are written under ``--workdir`` (default: a temporary
folder, removed at the end unless ``--keep``); about 9 GB of RAM is needed while the
single file is written. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# The real SD 1.5 configs (runwayml/stable-diffusion-v1-5) where they differ from the
# library defaults.
SD15_UNET = dict(
    sample_size=64,
    cross_attention_dim=768,
    attention_head_dim=8,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
)
SD15_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    latent_channels=4,
    layers_per_block=2,
    sample_size=512,
)
SD15_TEXT = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_attention_heads=12,
    num_hidden_layers=12,
    projection_dim=768,
    vocab_size=49408,
    max_position_embeddings=77,
    # the character tokenizer's ids (tests.tiny_models.write_char_tokenizer)
    bos_token_id=512,
    eos_token_id=513,
    pad_token_id=513,
)
PROMPT = "a red house on a hill at sunset"


def _peak_rss_bytes() -> int:
    return _status_bytes("VmHWM")


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


# --- phases, each run in its own process ------------------------------------------


def phase_build(work: Path) -> dict:
    """The diffusers folder, one component at a time (each freed before the next)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.tiny_models import build_tiny_pipeline

    folder = work / "sd15-random"
    build_tiny_pipeline(folder)  # tokenizer, scheduler, model_index.json
    torch.manual_seed(0)
    CLIPTextModel(CLIPTextConfig(**SD15_TEXT)).save_pretrained(
        folder / "text_encoder", safe_serialization=True
    )
    unet = UNet2DConditionModel(**SD15_UNET)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    del unet
    AutoencoderKL(**SD15_VAE).save_pretrained(folder / "vae", safe_serialization=True)
    size = sum(f.stat().st_size for f in folder.glob("*/*.safetensors"))
    return {"folder": str(folder), "weights_bytes": size}


def phase_convert(work: Path) -> dict:
    from tests.original_format import write_original_single_file

    out = write_original_single_file(work / "sd15-random", work / "sd15-random.safetensors")
    return {"single_file": str(out), "bytes": out.stat().st_size}


def phase_render(work: Path, steps: int, size: int, repeats: int) -> dict:
    import torch
    from diffusers import StableDiffusionPipeline

    from studio.engine import noise
    from studio.engine.models import load_model
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler
    from studio.engine.schedulers import build_scheduler

    model = load_model(str(work / "sd15-random"), device="cpu")
    assert model.native_size == 512, model.native_size
    sampler = Sampler(model)
    recipe = Recipe(
        prompt=PROMPT, seed=0, steps=steps, guidance=7.0, sampler="Euler", width=size, height=size
    )
    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=build_scheduler("Euler", model.scheduler_config, steps, model.device),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    latent_shape = (1, 4, size // 8, size // 8)

    def engine() -> torch.Tensor:
        return list(sampler.run(recipe))[-1].latent

    def bare() -> torch.Tensor:
        return pipe(
            PROMPT,
            num_inference_steps=steps,
            guidance_scale=7.0,
            height=size,
            width=size,
            latents=noise.start_noise(0, latent_shape),
            output_type="latent",
        ).images

    contenders = {"engine": engine, "pipeline": bare}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    last: dict[str, torch.Tensor] = {}
    for name, fn in contenders.items():  # warm-up
        last[name] = fn()
    for i in range(repeats):
        # interleaved A/B, the order flipped every round
        order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
        for name in order:
            began, began_cpu = time.perf_counter(), time.process_time()
            last[name] = contenders[name]()
            times[name].append(time.perf_counter() - began)
            cpu[name].append(time.process_time() - began_cpu)
    medians = {name: statistics.median(v) for name, v in times.items()}
    cpu_medians = {name: statistics.median(v) for name, v in cpu.items()}
    return {
        "times": times,
        "cpu": cpu,
        "median": medians,
        "ratio": medians["engine"] / medians["pipeline"],
        "ratio_min": min(times["engine"]) / min(times["pipeline"]),
        "ratio_cpu": cpu_medians["engine"] / cpu_medians["pipeline"],
        "latents_equal": bool(torch.equal(last["engine"], last["pipeline"])),
        "max_abs_diff": float((last["engine"] - last["pipeline"]).abs().max()),
        "torch_threads": torch.get_num_threads(),
        "peak_rss": _peak_rss_bytes(),
    }


def phase_load(work: Path, kind: str, cache_dir: Path) -> dict:
    """Import first (its memory is reported apart), then load, then the hash."""
    os.environ["NOISE_STUDIO_CACHE_DIR"] = str(cache_dir)
    import diffusers  # noqa: F401
    import torch
    import transformers  # noqa: F401

    from studio.engine.model_hash import cached_model_hash
    from studio.engine.models import load_model

    after_imports = _peak_rss_bytes()
    folder = work / "sd15-random"
    ref = folder if kind == "folder" else work / "sd15-random.safetensors"
    cached = cached_model_hash(ref) is not None
    began = time.perf_counter()
    model = load_model(str(ref), device="cpu", config_dir=None if kind == "folder" else folder)
    load_s = time.perf_counter() - began
    peak = _peak_rss_bytes()
    rss = _status_bytes("VmRSS")
    # Weights read from safetensors may still be unread pages of a memory map; reading
    # each once (as the first render does) makes them resident, so the peak below is
    # what the model costs in use.
    began = time.perf_counter()
    parts = [model.text_encoder, model.unet, model.vae]
    with torch.no_grad():
        total = sum(float(t.float().sum()) for part in parts for t in part.state_dict().values())
    touch_s = time.perf_counter() - began
    touched = {
        "peak_rss_touched": _peak_rss_bytes(),
        "rss_anon_touched": _status_bytes("RssAnon"),
        "rss_file_touched": _status_bytes("RssFile"),
        "touch_s": touch_s,
        "weights_sum_finite": total == total,
    }
    began = time.perf_counter()
    digest = model.model_hash
    hash_s = time.perf_counter() - began
    return {
        **touched,
        "kind": kind,
        "cache_was_warm": cached,
        "load_s": load_s,
        "hash_s": hash_s,
        "hash": digest,
        "peak_rss": peak,
        "rss_after_load": rss,
        "peak_rss_after_imports": after_imports,
    }


# --- the driver ---------------------------------------------------------------------


def _run_phase(*args: str) -> dict:
    """One phase in a fresh interpreter; its last stdout line is the JSON result."""
    proc = subprocess.run(
        [sys.executable, __file__, "--phase", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"phase {args[0]} failed with exit status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def _read_through(path: Path) -> None:
    """Read every weight file once so every timed load sees the same (warm) page cache."""
    files = [path] if path.is_file() else sorted(path.glob("*/*.safetensors"))
    for file in files:
        with file.open("rb") as fh:
            while fh.read(1 << 24):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the written weights")
    parser.add_argument("--skip-render", action="store_true")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        name, work, *rest = args.phase
        work = Path(work)
        if name == "build":
            result = phase_build(work)
        elif name == "convert":
            result = phase_convert(work)
        elif name == "render":
            result = phase_render(work, *(int(v) for v in rest))
        elif name == "load":
            result = phase_load(work, rest[0], Path(rest[1]))
        else:
            raise SystemExit(f"unknown phase {name}")
        print(json.dumps(result))
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-real-models-"))
    work.mkdir(parents=True, exist_ok=True)
    threads = os.environ.get("OMP_NUM_THREADS", "(unset)")
    print(f"SD 1.5-sized random weights, CPU, OMP_NUM_THREADS={threads}, in {work}")
    try:
        began = time.perf_counter()
        if not (work / "sd15-random" / "model_index.json").is_file():
            built = _run_phase("build", str(work))
            print(
                f"  wrote the folder ({_gb(built['weights_bytes'])}) in {time.perf_counter() - began:.0f} s"
            )
        if not (work / "sd15-random.safetensors").is_file():
            began = time.perf_counter()
            converted = _run_phase("convert", str(work))
            print(
                f"  wrote the single file ({_gb(converted['bytes'])}) in {time.perf_counter() - began:.0f} s"
            )

        if not args.skip_render:
            r = _run_phase("render", str(work), str(args.steps), str(args.size), str(args.repeats))
            print(
                f"render {args.size}x{args.size}, {args.steps} Euler steps, CFG 7, latent output, "
                f"interleaved A/B, median of {args.repeats} (torch threads {r['torch_threads']}):"
            )
            for name in ("engine", "pipeline"):
                runs = ", ".join(f"{t:.1f}" for t in r["times"][name])
                print(f"  {name:9s} {r['median'][name]:7.2f} s   (runs: {runs})")
            print(
                f"  CPU time  engine {statistics.median(r['cpu']['engine']):.2f} s, "
                f"pipeline {statistics.median(r['cpu']['pipeline']):.2f} s (medians)"
            )
            print(
                f"  ratio engine/pipeline: median wall {r['ratio']:.3f}, best wall {r['ratio_min']:.3f}, "
                f"median CPU {r['ratio_cpu']:.3f}"
            )
            print(
                f"  final latents equal: {r['latents_equal']} "
                f"(max |diff| {r['max_abs_diff']:.3g}); peak RSS {_gb(r['peak_rss'])}"
            )

        print("load (fresh process each; page cache warmed first; cold = empty hash cache):")
        results = []
        for kind in ("folder", "single file"):
            ref = work / ("sd15-random" if kind == "folder" else "sd15-random.safetensors")
            _read_through(ref)
            cache = Path(tempfile.mkdtemp(prefix="hash-cache-", dir=work))
            for state in ("cold", "warm"):
                res = _run_phase(
                    "load", str(work), "folder" if kind == "folder" else "file", str(cache)
                )
                assert res["cache_was_warm"] == (state == "warm"), res
                results.append((kind, state, res))
                print(
                    f"  {kind:11s} {state} cache: load {res['load_s']:6.2f} s + hash {res['hash_s']:6.2f} s "
                    f"= {res['load_s'] + res['hash_s']:6.2f} s; peak RSS {_gb(res['peak_rss'])} "
                    f"(after imports {_gb(res['peak_rss_after_imports'])}, "
                    f"RSS after load {_gb(res['rss_after_load'])}); hash {res['hash']}"
                )
                print(
                    f"  {'':11s} every weight read once ({res['touch_s']:.1f} s): peak RSS "
                    f"{_gb(res['peak_rss_touched'])} (anon {_gb(res['rss_anon_touched'])}, "
                    f"file-backed {_gb(res['rss_file_touched'])})"
                )
        peaks = {
            kind: max(r["peak_rss_touched"] for k, _, r in results if k == kind)
            for kind in ("folder", "single file")
        }
        print(
            f"peak RSS of a load with every weight read: folder {_gb(peaks['folder'])}, single file {_gb(peaks['single file'])} "
            f"(issue 12 before the fix: 5.6 GB and 8.7 GB)"
        )
    finally:
        if args.keep or args.workdir:
            print(f"weights kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
