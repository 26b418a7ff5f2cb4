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
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from studio.cli import (
    CliError,
    _reporting_errors,
    _write_image,
    add_recipe_options,
    base_recipe,
    load_sampler,
)
from studio.cli_cluster import ClusterSampler, add_backend_options, cluster_sampler, uses_cluster
from studio.engine.batching import batch_groups, with_batches


@contextmanager
def _sampler_for(args: argparse.Namespace, base: Any) -> Iterator[tuple[Any, Any]]:
    """The sampler for ``base``'s model, loaded as ``render`` loads it (cells equal lone
    renders), or the cluster's stand-in for it with ``--backend ray``; and ``base`` sized."""
    keep_size = args.size is not None or args.recipe is not None
    if not uses_cluster(args):
        yield load_sampler(args, base, keep_size=keep_size)
        return
    sampler, base = cluster_sampler(args, base, keep_size=keep_size)
    try:
        yield sampler, base
    finally:
        sampler.close()


def _render_all(sampler: Any, recipes: Sequence[Any]) -> list[Any]:
    """The decoded image of each recipe, in order. Recipes that share steps, sampler, size,
    guidance-ness and a ``batch`` above 1 run together, ``batch`` at a time (on a cluster,
    one job each: a recipe's ``batch`` pads its lone run to the same bits)."""
    if isinstance(sampler, ClusterSampler):
        return sampler.render_all(recipes)
    for recipe in recipes:
        recipe.validate(sampler.model.size_factor)
    images: list[Any] = [None] * len(recipes)
    for chunk in batch_groups(recipes):
        if len(chunk) == 1:
            latents = [list(sampler.run(recipes[chunk[0]]))[-1].latent]
        else:
            latents = [None] * len(chunk)
            for position, step in sampler.run_batch([recipes[i] for i in chunk]):
                latents[position] = step.latent
        for index, latent in zip(chunk, latents, strict=True):
            images[index] = sampler.decode(latent)
    return images


def _batched(recipes: Sequence[Any], batch: int) -> list[Any]:
    """``recipes`` with each one's ``batch`` set (see ``batching.with_batches``)."""
    if not 1 <= batch <= 64:
        raise CliError("--batch must be from 1 to 64.")
    return with_batches(recipes, batch)


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
    add_backend_options(parser)
    return parser


def run_brood(args: argparse.Namespace) -> dict[str, Any]:
    from studio.engine.breeding import brood

    started = time.perf_counter()
    if not 0.0 < args.dose <= 1.0:
        raise CliError("--dose must be above 0 (or every child is the same) and at most 1.")
    base = base_recipe(args)
    parents = base.parents or ((base.seed, 1.0),)
    brood_seed = args.brood_seed if args.brood_seed is not None else parents[0][0]
    with _sampler_for(args, base) as (sampler, base):
        children = _batched(brood(base, parents, args.children, args.dose, brood_seed), args.batch)
        images = _render_all(sampler, children)
    written = []
    for index, (recipe, image) in enumerate(zip(children, images, strict=True), start=1):
        path = args.out / f"child_{index:02d}.png"
        _write_image(path, image, recipe, sampler.model.model_hash)
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
    add(
        "--batch",
        type=int,
        default=8,
        help="cells per UNet batch, among cells of one steps and sampler (recorded); default 8",
    )
    add("--out", type=Path, required=True, help="the labelled grid image (PNG)")
    add("--json", action="store_true", help="print a one-line JSON summary with every cell")
    add("--debug", action="store_true", help="show tracebacks")
    add_backend_options(parser)
    return parser


def run_grid(args: argparse.Namespace) -> dict[str, Any]:
    from studio.engine.grid import Axis, grid_cells

    started = time.perf_counter()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise CliError(f"--seeds must be whole numbers like 1,2,3, not {args.seeds!r}.") from None
    axes = [Axis.parse(a) for a in args.axis]
    grid_cells(base_recipe(args), seeds, axes)  # refuse a bad grid before loading the model
    with _sampler_for(args, base_recipe(args)) as (sampler, base):
        cells = grid_cells(base, seeds, axes)
        recipes = _batched([c.recipe for c in cells], args.batch)
        cells = [replace(c, recipe=r) for c, r in zip(cells, recipes, strict=True)]
        images = _render_all(sampler, recipes)
    listed = []
    for cell, image in zip(cells, images, strict=True):
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
    from studio.atomic_write import write_atomically
    from studio.engine.grid import grid_sheet

    sheet = grid_sheet(cells, images)
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
