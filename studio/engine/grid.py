"""Seed grids and X/Y plots: one recipe per cell, seeds fixed across every axis.

Rows are seeds (times the second axis's values, when there is one); columns are
the first axis's values. Each cell is a plain recipe, so a cell rendered alone
gives the same pixels as in the grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from studio.engine.recipe import Recipe, RecipeError
from studio.engine.seeds import mutation_seed

if TYPE_CHECKING:
    from PIL import Image

MAX_AXES = 2
MAX_CELLS = 1024
SHEET_LABEL_HEIGHT = 16
SHEET_LABEL_WIDTH = 150
SHEET_GAP = 2

AXES = {
    "cfg": "CFG scale",
    "steps": "steps",
    "sampler": "sampler",
    "prompt": "prompt search and replace (the first value is the word replaced)",
    "dose": "mutation dose of the cell's own mutation seed",
    "temperature": "temperature",
}


@dataclass(frozen=True)
class Axis:
    """One axis of a grid: a name from ``AXES`` and its values as typed."""

    name: str
    values: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Axis:
        """``cfg=3,7,11`` → Axis("cfg", ("3", "7", "11"))."""
        name, sep, values = text.partition("=")
        name = name.strip().lower()
        if not sep or name not in AXES:
            raise RecipeError(
                f"An axis looks like cfg=3,7,11 and is one of {', '.join(AXES)}; not {text[:40]!r}."
            )
        parts = tuple(v.strip() for v in values.split(","))
        if not parts or not all(parts):
            raise RecipeError(f"The axis {name} has an empty value.")
        return cls(name, parts)

    def apply(self, recipe: Recipe, value: str) -> Recipe:
        try:
            if self.name == "cfg":
                return recipe.with_changes(guidance=float(value))
            if self.name == "steps":
                return recipe.with_changes(steps=int(value))
            if self.name == "temperature":
                return recipe.with_changes(temperature=float(value))
            if self.name == "dose":
                seed = mutation_seed(recipe.seed, 0)
                return recipe.with_changes(mutation_seed=seed, mutation_dose=float(value))
        except ValueError:
            raise RecipeError(
                f"The axis {self.name} has a value {value[:20]!r} that is not a number."
            ) from None
        if self.name == "sampler":
            return recipe.with_changes(sampler=value)
        search = self.values[0]
        if search not in recipe.prompt:
            raise RecipeError(
                f"The prompt does not hold {search!r}, the word the prompt axis replaces."
            )
        mix = tuple((text.replace(search, value), w) for text, w in recipe.prompt_mix)
        return recipe.with_changes(prompt=recipe.prompt.replace(search, value), prompt_mix=mix)


@dataclass(frozen=True)
class Cell:
    """One cell of a grid: where it sits, what it varies, and its recipe."""

    row: int
    column: int
    seed: int
    settings: tuple[tuple[str, str], ...]
    recipe: Recipe

    @property
    def label(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.settings)

    @property
    def column_label(self) -> str:
        """What the cell's column varies (its first axis), or "" with no axis."""
        return f"{self.settings[-1][0]}={self.settings[-1][1]}" if self.settings else ""

    @property
    def row_label(self) -> str:
        """The cell's seed, and the second axis's value when there is one."""
        label = f"seed {self.seed}"
        if len(self.settings) > 1:
            label += f" · {self.settings[0][0]}={self.settings[0][1]}"
        return label


def cell_origin(cell: Cell, cell_size: tuple[int, int]) -> tuple[int, int]:
    """Where ``cell`` sits on a :func:`grid_sheet` whose cells are ``cell_size`` (w, h)."""
    width, height = cell_size
    return (
        SHEET_LABEL_WIDTH + cell.column * (width + SHEET_GAP),
        SHEET_LABEL_HEIGHT + cell.row * (height + SHEET_GAP),
    )


def grid_sheet(cells: Sequence[Cell], images: Sequence[np.ndarray]) -> Image.Image:
    """One labelled image of a grid: cells at their own pixels (no resampling), column
    labels on top, row labels on the left. The CLI's ``grid --out`` and the window's
    export write this."""
    from PIL import Image, ImageDraw

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
        x, y = cell_origin(cell, (cell_w, cell_h))
        sheet.paste(Image.fromarray(image), (x, y))
        if cell.row == 0 and cell.settings:
            draw.text((x + 1, 2), cell.column_label, fill="black")
        if cell.column == 0:
            draw.text((4, y + cell_h // 2 - 5), cell.row_label, fill="black")
    return sheet


def grid_cells(base: Recipe, seeds: Sequence[int], axes: Sequence[Axis]) -> list[Cell]:
    """The cells, row by row. Every recipe is validated (size factor 1: the model checks its own)."""
    if not seeds:
        raise RecipeError("A grid needs at least one seed.")
    if len(axes) > MAX_AXES:
        raise RecipeError(f"A grid has at most {MAX_AXES} axes besides the seeds.")
    columns = axes[0] if axes else None
    rows_axis = axes[1] if len(axes) > 1 else None
    column_values = columns.values if columns else ("",)
    row_values = rows_axis.values if rows_axis else ("",)
    if len(seeds) * len(row_values) * len(column_values) > MAX_CELLS:
        raise RecipeError(f"A grid has at most {MAX_CELLS} cells.")
    cells = []
    row = 0
    for seed in seeds:
        for row_value in row_values:
            for column, column_value in enumerate(column_values):
                recipe = base.with_changes(seed=int(seed), lineage=())
                settings: list[tuple[str, str]] = []
                for axis, value in ((rows_axis, row_value), (columns, column_value)):
                    if axis is not None:
                        recipe = axis.apply(recipe, value)
                        settings.append((axis.name, value))
                cells.append(Cell(row, column, int(seed), tuple(settings), recipe.validate(1)))
            row += 1
    return cells
