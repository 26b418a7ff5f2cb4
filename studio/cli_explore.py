"""``brood`` and ``grid``: many versions at once from the command line.

``python main.py brood --parents 11:1,22:1 --children 8 --dose 0.2 --out DIR``
writes one PNG per child, each carrying the recipe that reproduces it.
``python main.py grid --prompt … --seeds 1,2,3 --axis cfg=3,7,11 --out grid.png``
writes one labelled sheet; its ``--json`` lists every cell's recipe and the sha256
of its pixels, the same as ``render --json`` of that recipe gives.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from studio.cli import (
    CliError,
    _reporting_errors,
    _write_image,
    add_recipe_options,
    base_recipe,
)

SHEET_LABEL_HEIGHT = 16
SHEET_LABEL_WIDTH = 150
SHEET_GAP = 2


def _render_all(
    recipes: Sequence[Any], device: str | None, model_config: str | None
) -> Iterator[tuple[Any, Any, str]]:
    """(recipe, image, model hash) for each recipe, on one loaded model, as ``render`` renders."""
    import torch

    from studio.engine.models import load_model, studio_torch_threads
    from studio.engine.sampler import Sampler

    torch.set_num_threads(studio_torch_threads())  # render's count: cells equal lone renders
    models = {recipe.model for recipe in recipes}
    if len(models) != 1:
        raise CliError("Every recipe of a brood or grid uses one model.")
    model = load_model(recipes[0].model, device=device, config_dir=model_config)
    sampler = Sampler(model)
    for recipe in recipes:
        recipe.validate(model.size_factor)
    start = 0
    while start < len(recipes):
        group = recipes[start : start + recipes[start].batch]
        start += len(group)
        if len(group) == 1:
            latents = [list(sampler.run(group[0]))[-1].latent]
        else:
            latents = [None] * len(group)
            for position, step in sampler.run_batch(group):
                latents[position] = step.latent
        for recipe, latent in zip(group, latents, strict=True):
            yield recipe, sampler.decode(latent), model.model_hash


def _sha256(image: Any) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


# ---- brood ---------------------------------------------------------------------------


def build_brood_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py brood",
        description="Breed N children from parents' noises, each mutated by a dose of its own noise.",
    )
    add_recipe_options(parser)
    add = parser.add_argument
    add("--children", type=int, default=8, help="how many children; default 8")
    add("--dose", type=float, default=0.2, help="mutation dose of each child (0-1]; default 0.2")
    add(
        "--brood-seed",
        type=int,
        help="seed the children's mutation seeds derive from; default the first parent's seed",
    )
    add(
        "--batch",
        type=int,
        default=8,
        help="children per UNet batch (recorded in each recipe, so each reproduces); default 8",
    )
    add("--out", type=Path, required=True, metavar="DIR", help="folder for child_NN.png")
    add("--json", action="store_true", help="print a one-line JSON summary")
    add("--debug", action="store_true", help="show tracebacks")
    return parser


def run_brood(args: argparse.Namespace) -> dict[str, Any]:
    from studio.engine.breeding import brood

    started = time.perf_counter()
    base = base_recipe(args)
    parents = base.parents or ((base.seed, 1.0),)
    brood_seed = args.brood_seed if args.brood_seed is not None else parents[0][0]
    if not 1 <= args.batch <= 64:
        raise CliError("--batch must be from 1 to 64.")
    batch = min(args.batch, args.children)
    children = [
        child.with_changes(batch=batch)
        for child in brood(base, parents, args.children, args.dose, brood_seed)
    ]
    written = []
    rendered = _render_all(children, args.device, args.model_config)
    for index, (recipe, image, model_hash) in enumerate(rendered, start=1):
        path = args.out / f"child_{index:02d}.png"
        _write_image(path, image, recipe, model_hash)
        written.append({"file": str(path), "sha256": _sha256(image), "recipe": recipe.to_dict()})
    return {"seconds": round(time.perf_counter() - started, 3), "children": written}


def brood_main(argv: list[str] | None = None) -> int:
    args = build_brood_parser().parse_args(argv)
    status, summary = _reporting_errors(lambda: run_brood(args), debug=args.debug)
    if status:
        return status
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"wrote {len(summary['children'])} children to {args.out} ({summary['seconds']} s)")
    return 0


# ---- grid ----------------------------------------------------------------------------


def build_grid_parser() -> argparse.ArgumentParser:
    from studio.engine.grid import AXES

    parser = argparse.ArgumentParser(
        prog="main.py grid",
        description="A seed grid or X/Y plot: seeds stay fixed across every axis.",
    )
    add_recipe_options(parser)
    add = parser.add_argument
    add("--seeds", required=True, help="comma-separated seeds, one row each, e.g. 1,2,3")
    add(
        "--axis",
        action="append",
        default=[],
        metavar="NAME=V1,V2,…",
        help=f"up to two axes (columns, then rows within a seed): {', '.join(AXES)}",
    )
    add("--out", type=Path, required=True, help="the labelled grid image (PNG)")
    add("--json", action="store_true", help="print a one-line JSON summary with every cell")
    add("--debug", action="store_true", help="show tracebacks")
    return parser


def run_grid(args: argparse.Namespace) -> dict[str, Any]:
    from studio.engine.grid import Axis, grid_cells

    started = time.perf_counter()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise CliError(f"--seeds must be whole numbers like 1,2,3, not {args.seeds!r}.") from None
    cells = grid_cells(base_recipe(args), seeds, [Axis.parse(a) for a in args.axis])
    images = []
    listed = []
    rendered = _render_all([c.recipe for c in cells], args.device, args.model_config)
    for cell, (_, image, _hash) in zip(cells, rendered, strict=True):
        images.append(image)
        listed.append(
            {
                "row": cell.row,
                "column": cell.column,
                "seed": cell.seed,
                "settings": dict(cell.settings),
                "sha256": _sha256(image),
                "recipe": cell.recipe.to_dict(),
            }
        )
    _write_sheet(args.out, cells, images)
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "out": str(args.out),
        "cells": listed,
    }


def _write_sheet(path: Path, cells: Sequence[Any], images: Sequence[Any]) -> None:
    """Cells at their own pixels (no resampling), column labels on top, row labels on the left."""
    from PIL import Image, ImageDraw

    from studio.atomic_write import write_atomically

    rows = max(c.row for c in cells) + 1
    columns = max(c.column for c in cells) + 1
    cell_w = max(int(i.shape[1]) for i in images)
    cell_h = max(int(i.shape[0]) for i in images)
    step_w, step_h = cell_w + SHEET_GAP, cell_h + SHEET_GAP
    sheet = Image.new(
        "RGB",
        (SHEET_LABEL_WIDTH + columns * step_w, SHEET_LABEL_HEIGHT + rows * step_h),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    for cell, image in zip(cells, images, strict=True):
        x = SHEET_LABEL_WIDTH + cell.column * step_w
        y = SHEET_LABEL_HEIGHT + cell.row * step_h
        sheet.paste(Image.fromarray(image), (x, y))
        if cell.row == 0 and cell.settings:
            draw.text((x + 1, 2), cell.settings[-1][0] + "=" + cell.settings[-1][1], fill="black")
        if cell.column == 0:
            row_label = f"seed {cell.seed}"
            if len(cell.settings) > 1:
                row_label += f" · {cell.settings[0][0]}={cell.settings[0][1]}"
            draw.text((4, y + cell_h // 2 - 5), row_label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda temp: sheet.save(temp, format="PNG"))


def grid_main(argv: list[str] | None = None) -> int:
    args = build_grid_parser().parse_args(argv)
    status, summary = _reporting_errors(lambda: run_grid(args), debug=args.debug)
    if status:
        return status
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"wrote {args.out} ({len(summary['cells'])} cells, {summary['seconds']} s)")
    return 0
