"""The headless CLI over the same engine as the window.

``python main.py render`` renders a recipe; ``python main.py info IMAGE`` prints
the recipe an image carries, read exactly as the studio reads it on import.
Errors go to stderr as one clear sentence with exit code 2; a traceback only
with ``--debug``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_ERROR = 2


class CliError(Exception):
    """A user error: printed as one sentence."""


def add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that makes recipes takes (render, brood, grid)."""
    add = parser.add_argument
    add("--prompt", help="what to draw")
    add("--negative", help="what to avoid (negative prompt)")
    add("--seed", type=int, help="noise seed (0 … 2^64-1); default 0")
    add("--steps", type=int, help="denoising steps; default 20")
    add("--cfg", type=float, help="classifier-free guidance scale; default 7")
    add(
        "--scheduler",
        "--sampler",
        dest="sampler",
        help="sampler name, e.g. 'Euler a', 'DPM++ 2M Karras'",
    )
    add("--size", help="WxH in pixels, e.g. 512x512; default: the model's native size")
    add(
        "--model",
        help="'bundled' (default), a diffusers folder, a .safetensors file or hf:org/name",
    )
    add("--model-config", help="local config folder for a single-file .safetensors model")
    add("--device", help="cpu, cuda, mps, optionally with :fp16/:bf16/:fp32")
    add(
        "--memory-saving",
        metavar="LIST",
        help="vae_tiling, attention_slicing, cpu_offload, each =auto|on|off, comma-separated "
        "(default: auto, on only when memory is short)",
    )
    add("--variation-seed", type=int, help="A1111 variation seed")
    add("--variation-strength", type=float, help="A1111 variation strength (0-1)")
    add(
        "--renoise-seed",
        type=int,
        help="when resuming: seed of the fresh noise mixed in at the branch step",
    )
    add(
        "--renoise-strength",
        type=float,
        help="when resuming: how much of the remaining noise to replace (0-1)",
    )
    add(
        "--parents",
        metavar="S:W,…",
        help="breed the start noise from parents' seeds and weights, e.g. 11:1,22:1",
    )
    add("--mutation", metavar="S:D", help="mutate the start noise by dose D of seed S's noise")
    add(
        "--parent-prompt",
        action="append",
        metavar="TEXT",
        help="with --parents: one parent's prompt, once per pair in their order (instead of "
        "--prompt); differing prompts are mixed by the parents' weights",
    )
    add(
        "--mix-prompts",
        action=argparse.BooleanOptionalAction,
        help="condition on the weighted mix of the parents' differing prompts (default); "
        "--no-mix-prompts keeps the first parent's prompt",
    )
    add(
        "--temperature",
        type=float,
        help="scale of the start noise and of ancestral/SDE step noise; default 1",
    )
    add(
        "--recipe",
        type=Path,
        metavar="FILE",
        help="take the recipe from an image with our metadata or a recipe JSON; options override it",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py render",
        description="Render a recipe headlessly, streaming every step; resume and branch from checkpoints.",
    )
    add_recipe_options(parser)
    add = parser.add_argument
    add("--out", type=Path, help="write the final image (PNG with its recipe as metadata)")
    add("--every-step", type=Path, metavar="DIR", help="write one preview PNG per step into DIR")
    add("--preview", choices=("x0", "xt"), default="x0", help="which preview --every-step writes")
    add(
        "--checkpoint-at",
        nargs=2,
        action="append",
        metavar=("K", "FILE"),
        default=[],
        help="save the checkpoint after step K (1-based, as the UI shows it) to FILE; repeatable",
    )
    add(
        "--resume",
        type=Path,
        metavar="FILE",
        help="continue from a saved checkpoint; options given override its recipe",
    )
    add(
        "--init-image",
        type=Path,
        metavar="FILE",
        help="start from this image (PNG, JPEG or WebP); the size defaults to the image's",
    )
    add(
        "--strength",
        type=float,
        help="with --init-image: how far the image is pushed into noise, 0-1; default 0.75",
    )
    add("--mask", type=Path, metavar="FILE", help="with --init-image: repaint where it is white")
    add(
        "--outpaint",
        "--extend",
        metavar="L,T,R,B",
        help="with --init-image: extend it by these pixels on the left, top, right and bottom "
        "and fill the new area (inpainting it, strength 1 unless given); the old area stays exact",
    )
    add(
        "--cross-at",
        type=int,
        metavar="K",
        help="cross the two --parents-recipes after step K (1-based): the slerp of their latents "
        "there, re-noised by --mutation S:D, continued with the first's recipe",
    )
    add(
        "--parents-recipes",
        metavar="A,B",
        help="with --cross-at: the two parents' recipes (images or JSON), as A.json,B.json; "
        "weights as A.json:1,B.json:2",
    )
    add("--json", action="store_true", help="print a one-line JSON summary")
    add("--debug", action="store_true", help="show tracebacks")
    from studio.cli_cluster import add_backend_options

    add_backend_options(parser)
    return parser


DEFAULT_STRENGTH = 0.75
"""A1111's default denoising strength for image-to-image."""


def _init_images(args: argparse.Namespace, recipe: Any) -> tuple[Any, tuple[Any, ...]]:
    """``recipe`` starting from ``--init-image`` (and ``--mask``), with the pixels it names."""
    from studio.document.imageio import read_image
    from studio.engine import img2img, init_pixels

    outpaint = getattr(args, "outpaint", None)
    if args.init_image is None:
        if args.mask is not None or args.strength is not None or outpaint is not None:
            raise CliError("--strength, --mask and --outpaint need an --init-image.")
        return recipe, ()
    image = init_pixels.rgb_of(read_image(args.init_image).pixels)
    if outpaint is not None:
        return _outpaint_images(args, recipe, image, outpaint)
    changes: dict[str, Any] = {"init_image": img2img.image_hash(image), "mask": ""}
    if args.resume is None:
        changes["strength"] = DEFAULT_STRENGTH if args.strength is None else args.strength
        if args.size is None and getattr(args, "recipe", None) is None:
            changes["width"], changes["height"] = int(image.shape[1]), int(image.shape[0])
    images: tuple[Any, ...] = (image,)
    if args.mask is not None:
        mask = init_pixels.mask_of(read_image(args.mask).pixels)
        if mask.shape != image.shape[:2]:
            raise CliError(
                f"The mask is {mask.shape[1]}×{mask.shape[0]} pixels but the init image is "
                f"{image.shape[1]}×{image.shape[0]}."
            )
        changes["mask"] = img2img.image_hash(mask)
        images += (mask,)
    return recipe.with_changes(**changes), images


def _outpaint_images(
    args: argparse.Namespace, recipe: Any, image: Any, outpaint: str
) -> tuple[Any, tuple[Any, ...]]:
    """``recipe`` filling ``image`` extended by ``--outpaint``: the padded image and the
    mask of its new area (feathered into it) by hash, as an inpaint names them."""
    from studio.engine import img2img, init_pixels

    if args.mask is not None:
        raise CliError("Give --mask or --outpaint, not both: the outpaint's mask is its new area.")
    try:
        padding = init_pixels.padding_of(outpaint)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    padded, mask = init_pixels.pad_for_outpaint(image, padding)
    changes: dict[str, Any] = {
        "init_image": img2img.image_hash(padded),
        "mask": img2img.image_hash(mask),
    }
    if args.resume is None:
        changes["strength"] = 1.0 if args.strength is None else args.strength
        if getattr(args, "recipe", None) is None:
            changes["width"], changes["height"] = int(padded.shape[1]), int(padded.shape[0])
    return recipe.with_changes(**changes), (padded, mask)


_RECIPE_OPTIONS = {
    "prompt": "prompt",
    "negative": "negative_prompt",
    "seed": "seed",
    "steps": "steps",
    "cfg": "guidance",
    "sampler": "sampler",
    "model": "model",
    "variation_seed": "variation_seed",
    "variation_strength": "variation_strength",
    "renoise_seed": "renoise_seed",
    "renoise_strength": "renoise_strength",
    "temperature": "temperature",
    "model_config": "model_config",
}


def _recipe_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes = {
        field: getattr(args, opt)
        for opt, field in _RECIPE_OPTIONS.items()
        if getattr(args, opt) is not None
    }
    if args.size is not None:
        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise CliError(f"--size must look like 64x64, not {args.size!r}.") from None
        changes["width"], changes["height"] = width, height
    if args.prompt is not None:
        changes["prompt_mix"] = ()  # a prompt given replaces a recipe's mix
    if args.parents is not None:
        from studio.engine.recipe import parse_parents

        changes["parents"] = parse_parents(args.parents)
        if not changes["parents"]:
            raise CliError("--parents needs at least one seed:weight pair.")
    if args.mutation is not None:
        seed, _, dose = args.mutation.partition(":")
        try:
            changes["mutation_seed"], changes["mutation_dose"] = int(seed), float(dose)
        except ValueError:
            raise CliError(
                f"--mutation must look like 5:0.1 (seed:dose), not {args.mutation!r}."
            ) from None
    return changes


def base_recipe(args: argparse.Namespace) -> Any:
    """The recipe ``render``'s options describe (``--recipe`` first, options over it), without
    a checkpoint. With parents and no ``--seed``, the first parent's seed drives the step noise,
    so one parent at full weight is exactly that seed's image."""
    from studio.engine.recipe import Recipe

    changes = _recipe_changes(args)
    if "parents" in changes and "seed" not in changes:
        changes["seed"] = changes["parents"][0][0]
    if args.parent_prompt and args.prompt is not None:
        raise CliError("Give --prompt or one --parent-prompt per parent, not both.")
    if getattr(args, "recipe", None) is not None:
        return _with_parent_prompts(args, read_recipe_file(args.recipe).with_changes(**changes))
    if args.parent_prompt:
        changes["prompt"] = args.parent_prompt[0]
    if "prompt" not in changes:
        raise CliError("Give a --prompt (or a --recipe file, or --resume a checkpoint).")
    return _with_parent_prompts(args, Recipe(**changes))


def _with_parent_prompts(args: argparse.Namespace, recipe: Any) -> Any:
    """``recipe`` on the mix of ``--parent-prompt``s by the parents' weights (see
    ``breeding.with_mixed_prompts``), or with ``--no-mix-prompts`` on the first one."""
    from studio.engine.breeding import with_mixed_prompts
    from studio.engine.recipe import Recipe

    prompts = args.parent_prompt or []
    if prompts and len(prompts) != len(recipe.parents):
        raise CliError(
            f"Give one --parent-prompt per --parents pair ({len(recipe.parents)} pairs, "
            f"{len(prompts)} prompts)."
        )
    if args.mix_prompts is False:
        first = prompts[0] if prompts else recipe.prompt_weights()[0][0]
        return recipe.with_changes(prompt=first, prompt_mix=())
    if not prompts:
        return recipe
    parents = [
        (Recipe(text), weight) for text, (_, weight) in zip(prompts, recipe.parents, strict=True)
    ]
    return with_mixed_prompts(recipe, parents)


def _cross_recipe(args: argparse.Namespace) -> Any:
    """The child ``--cross-at K --parents-recipes A,B [--mutation S:D]`` describes, with
    the other recipe options over it (they change the child's run after step K)."""
    from studio.engine.breeding import cross_at
    from studio.engine.recipe import RecipeError

    if args.cross_at is None or args.parents_recipes is None:
        raise CliError("--cross-at K and --parents-recipes A,B go together.")
    files = [item for item in args.parents_recipes.split(",") if item]
    if len(files) != 2:
        raise CliError("--parents-recipes needs exactly two recipes, as A.json,B.json.")
    recipes, weights = [], []
    for item in files:
        name, sep, weight = item.rpartition(":")
        try:
            weights.append(float(weight) if sep else 1.0)
        except ValueError:  # a colon of the path itself
            name, sep = item, ""
            weights.append(1.0)
        recipes.append(read_recipe_file(Path(name if sep else item)))
    changes = _recipe_changes(args)
    seed = changes.pop("mutation_seed", 0)
    dose = changes.pop("mutation_dose", 0.0)
    if "parents" in changes:
        raise CliError("A cross at a step takes its parents from --parents-recipes, not --parents.")
    try:
        child = cross_at(
            recipes[0],
            recipes[1],
            args.cross_at - 1,
            dose,
            seed,
            tuple(weights),
            mix_prompts=args.mix_prompts is not False,
        )
    except RecipeError as exc:
        raise CliError(str(exc)) from None
    return child.with_changes(**changes)


MAX_RECIPE_FILE_BYTES = 16 * 1024 * 1024


def read_recipe_file(path: Path) -> Any:
    """The recipe in ``path``: an image's metadata (PNG, JPEG, WebP) or a JSON file holding a
    recipe, or a ``render --json`` summary or grid cell holding one under "recipe". What the
    reading changed (a prompt cut to its cap, an unknown sampler) goes to stderr as notes."""
    import os
    import stat

    from studio.engine.recipe import Recipe, RecipeError

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CliError(f"The recipe {path} is not a regular file, so it is not read.")
        with open(path, "rb") as file:
            head = file.read(MAX_RECIPE_FILE_BYTES + 1)
    except OSError as exc:
        raise CliError(f"Cannot read the recipe {path}: {exc.strerror or exc}.") from None
    notes: list[str] = []
    if head.lstrip()[:1] in (b"{", b"["):
        if len(head) > MAX_RECIPE_FILE_BYTES:
            raise CliError(f"The recipe {path} is larger than any recipe is.")
        try:
            data = json.loads(head.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise CliError(f"The recipe {path} is not valid JSON ({str(exc)[:60]}).") from None
        if isinstance(data, dict) and isinstance(data.get("recipe"), dict):
            data = data["recipe"]
        try:
            recipe = Recipe.from_dict(data, notes)
        except RecipeError as exc:
            raise CliError(f"The recipe {path} is unreadable: {exc}") from None
    else:
        info = read_info(path)
        recipe, notes = info["recipe_object"], info["warnings"]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return recipe


def run(args: argparse.Namespace) -> dict[str, Any]:
    from studio.engine.checkpoint import Checkpoint

    started = time.perf_counter()
    start = start_bytes = None
    if args.resume is not None:
        if args.recipe is not None:
            raise CliError("Give --recipe or --resume, not both.")
        start_bytes = _read_checkpoint_file(args.resume)
        start = Checkpoint.from_bytes(start_bytes)
        # The result is a branch of the checkpoint's run, and its recipe says so.
        recipe = start.recipe.with_changes(**_recipe_changes(args))
        recipe = recipe.branched_from(start.recipe, start.step_index)
    elif args.cross_at is not None or args.parents_recipes is not None:
        if args.recipe is not None:
            raise CliError("Give --recipe or --cross-at with --parents-recipes, not both.")
        recipe = _cross_recipe(args)
    else:
        recipe = base_recipe(args)
    recipe, images = _init_images(args, recipe)
    recipe.validate(
        size_factor=1
    )  # before loading anything; the model's own factor is checked again below
    checkpoints: dict[int, Path] = {}
    for k, file in args.checkpoint_at:
        if not k.isdigit() or not 1 <= int(k) <= recipe.steps:
            raise CliError(f"--checkpoint-at K must be a step from 1 to {recipe.steps}, not {k!r}.")
        checkpoints[int(k) - 1] = Path(file)

    sized = (
        args.size is not None
        or args.resume is not None
        or getattr(args, "recipe", None)
        or args.init_image is not None
        or recipe.cross is not None
    )
    from studio.cli_cluster import render_on_cluster, uses_cluster

    if uses_cluster(args):
        return render_on_cluster(
            args, recipe, start_bytes, checkpoints, keep_size=bool(sized), images=images
        )
    sampler, recipe = load_sampler(args, recipe, keep_size=bool(sized))
    model = sampler.model
    recipe.validate(model.size_factor)
    info = sampler.prompt_info(recipe.prompt)
    if args.every_step is not None:
        args.every_step.mkdir(parents=True, exist_ok=True)
    latent = start.latent if start is not None else None
    steps_run = 0
    for step in sampler.run(recipe, start=start, cancel=threading.Event(), images=images):
        steps_run += 1
        latent = step.latent
        if step.index in checkpoints:
            _write_bytes(checkpoints[step.index], step.checkpoint.to_bytes())
        if args.every_step is not None:
            preview = step.preview_x0 if args.preview == "x0" else step.preview_xt
            _write_preview(args.every_step / f"step_{step.index + 1:04d}.png", preview, recipe)
    if latent is None and not recipe.init_image:
        raise CliError("Nothing was rendered.")
    image = sampler.finish(recipe, latent, images)
    if args.out is not None:
        _write_image(args.out, image, recipe, model.model_hash)
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "steps_run": steps_run,
        "steps": recipe.steps,
        "resumed_from": start.step_index + 1 if start is not None else None,
        "device": model.device.type,
        "dtype": str(model.dtype).removeprefix("torch."),
        "model": model.name,
        "model_hash": model.model_hash,
        "sha256": hashlib.sha256(image.tobytes()).hexdigest(),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "tokens": info.tokens,
        "token_limit": info.limit,
        "tokens_dropped": info.dropped_tokens,
        "dropped_text": info.dropped_text,
        "out": str(args.out) if args.out else None,
        "recipe": recipe.to_dict(),
    }


def _read_checkpoint_file(path: Path) -> bytes:
    """The bytes of a checkpoint file: stat first, so a FIFO, a device or an oversized
    file is refused before anything is read from it."""
    import os
    import stat

    from studio.engine.checkpoint import MAX_CHECKPOINT_BYTES

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise CliError(f"The checkpoint {path} is not a regular file, so it is not read.")
        if info.st_size > MAX_CHECKPOINT_BYTES:
            raise CliError(
                f"The checkpoint {path} is {info.st_size} bytes, more than the "
                f"{MAX_CHECKPOINT_BYTES} any checkpoint can be."
            )
        # O_NONBLOCK: should the file be swapped for a FIFO after the stat, opening it cannot hang.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise CliError(f"The checkpoint {path} is not a regular file, so it is not read.")
            data = file.read(MAX_CHECKPOINT_BYTES + 1)
    except OSError as exc:
        raise CliError(f"Cannot read the checkpoint {path}: {exc.strerror or exc}.") from None
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CliError(
            f"The checkpoint {path} grew past {MAX_CHECKPOINT_BYTES} bytes as it was read."
        )
    return data


def _write_bytes(path: Path, data: bytes) -> None:
    from studio.atomic_write import write_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data)


def _write_preview(path: Path, preview: Any, recipe: Any) -> None:
    from PIL import Image

    from studio.atomic_write import write_atomically

    image = Image.fromarray(preview).resize(
        (recipe.width, recipe.height), Image.Resampling.BILINEAR
    )
    write_atomically(path, lambda temp: image.save(temp, format="PNG"))


def _write_image(path: Path, image: Any, recipe: Any, model_hash: str) -> None:
    from PIL import Image

    from studio.atomic_write import write_atomically
    from studio.formats import png_info

    info = png_info(recipe, model_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(
        path, lambda temp: Image.fromarray(image).save(temp, format="PNG", pnginfo=info)
    )


def main(argv: list[str] | None = None) -> int:
    """``render``: the exit status of one headless render."""
    args = build_parser().parse_args(argv)
    status, summary = _reporting_errors(lambda: run(args), debug=args.debug)
    if status:
        return status
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    elif args.out is not None:
        print(
            f"wrote {args.out} ({summary['steps_run']} steps, {summary['seconds']} s on {summary['device']})"
        )
    return 0


# ---- info ---------------------------------------------------------------------------


def build_info_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py info",
        description="Print the recipe an image carries, read as the studio reads it on import.",
    )
    parser.add_argument("image", type=Path, help="a PNG, JPEG or WebP image")
    parser.add_argument("--json", action="store_true", help="print one line of JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def read_info(path: Path) -> dict[str, Any]:
    """The recipe of an image as the studio's import would load it, with where it came from."""
    from studio.document.imageio import read_metadata, recipe_from_metadata
    from studio.engine.schedulers import SAMPLERS

    metadata = read_metadata(path)
    found = recipe_from_metadata(metadata, SAMPLERS)
    if found.recipe is None:
        why = f": {found.warnings[0]}" if found.warnings else "."
        raise CliError(f"{path.name} carries no recipe{why}")
    return {
        "file": str(path),
        "source": found.source,
        "parameters": metadata.parameters or found.recipe.to_parameters(),
        "recipe": found.recipe.to_dict(),
        "recipe_object": found.recipe,
        "warnings": list(found.warnings),
    }


_SOURCES = {
    "json": "the Noise Studio JSON recipe (exact)",
    "parameters": "the A1111 parameters text only (numbers as rounded there)",
}


def info_main(argv: list[str] | None = None) -> int:
    """``info``: print an image's recipe; exit status 2 when there is none to read."""
    args = build_info_parser().parse_args(argv)
    status, info = _reporting_errors(lambda: read_info(args.image), debug=args.debug)
    if status:
        return status
    info.pop("recipe_object")
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
        return 0
    print(info["parameters"])
    print()
    print(f"Recipe from {_SOURCES[info['source']]}.")
    for warning in info["warnings"]:
        print(f"Note: {warning}")
    return 0


# ---- dispatch ----------------------------------------------------------------------------


def score_main(argv: list[str] | None = None) -> int:
    """``score``: fidelity and novelty of images (see :mod:`studio.cli_score`)."""
    from studio.cli_score import score_main as score_command

    return score_command(argv)


def brood_main(argv: list[str] | None = None) -> int:
    """``brood``: children of parents' noises (see :mod:`studio.cli_explore`)."""
    from studio.cli_explore import brood_main as brood_command

    return brood_command(argv)


def grid_main(argv: list[str] | None = None) -> int:
    """``grid``: a seed grid or X/Y plot (see :mod:`studio.cli_explore`)."""
    from studio.cli_explore import grid_main as grid_command

    return grid_command(argv)


COMMANDS = {
    "render": main,
    "info": info_main,
    "score": score_main,
    "brood": brood_main,
    "grid": grid_main,
}
"""The subcommands of ``main.py`` and of the installed ``noise-studio``; anything else opens the window."""


def run_command(argv: list[str]) -> int:
    """Run ``argv[0]`` (one of ``COMMANDS``) with the rest of the arguments."""
    return COMMANDS[argv[0]](argv[1:])


def _reporting_errors(work: Callable[[], Any], debug: bool) -> tuple[int, Any]:
    """(0, ``work()``), or (exit status, None) with the user error printed as one sentence."""
    from studio.document.imageio import ImageImportError
    from studio.engine.errors import EngineError
    from studio.engine.recipe import RecipeError

    try:
        return 0, work()
    except (CliError, EngineError, RecipeError, ImageImportError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:
        if debug:
            raise
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130, None
    return EXIT_ERROR, None


def load_sampler(args: argparse.Namespace, recipe: Any, keep_size: bool) -> tuple[Any, Any]:
    """The sampler for ``recipe``'s model, loaded as the window's worker loads it (its thread
    count, so resumes stay exact), and ``recipe`` at the model's native size unless
    ``keep_size`` (as diffusers' pipelines: the UNet's sample size × the VAE factor)."""
    import torch

    from studio.engine.memory_saving import MemorySaving
    from studio.engine.models import load_model, studio_torch_threads
    from studio.engine.sampler import Sampler

    torch.set_num_threads(studio_torch_threads())
    saving = (
        MemorySaving.parse(args.memory_saving)
        if args.memory_saving is not None
        else MemorySaving.from_environment()
    )
    model = load_model(
        recipe.model,
        device=args.device,
        config_dir=recipe.model_config or None,
        memory_saving=saving,
    )
    if not keep_size:
        recipe = recipe.with_changes(width=model.native_size, height=model.native_size)
    return Sampler(model), recipe
