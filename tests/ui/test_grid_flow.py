"""Seed grids in the real window: every cell a version equal to its recipe rendered alone,
labelled cells, a click opens a cell's version, and the export is one labelled image."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from studio.engine.grid import Axis, cell_origin
from tests.ui.conftest import GENERATION_TIMEOUT_MS

SEEDS = [1234, 99]
AXES = [Axis.parse("cfg=3,7"), Axis.parse("prompt=red,blue")]


def _render(sampler, recipe) -> np.ndarray:
    return sampler.decode(list(sampler.run(recipe))[-1].latent)


def _make_grid(qtbot, window):
    window.panel.steps.setValue(4)
    grids = window.grids
    grids.ask_grid = lambda: (SEEDS, AXES)
    grids.grid_action.trigger()  # Generate › Seed grid… (Ctrl+Shift+G)
    ids = grids.version_ids
    tree = window.session.tree
    qtbot.waitUntil(
        lambda: all(v in tree and tree.get(v).finished for v in ids),
        timeout=2 * GENERATION_TIMEOUT_MS,
    )
    return grids, ids


def test_grid_cells_equal_their_recipes_rendered_alone(qtbot, window, tiny_sampler):
    grids, ids = _make_grid(qtbot, window)
    tree = window.session.tree
    assert len(ids) == 8 and len(set(ids)) == 8
    assert window.stack.currentWidget() is grids.view
    view = grids.view
    assert [label.text() for label in view.column_labels] == ["cfg=3", "cfg=7"]
    assert [label.text() for label in view.row_labels] == [
        "seed 1234 · prompt=red",
        "seed 1234 · prompt=blue",
        "seed 99 · prompt=red",
        "seed 99 · prompt=blue",
    ]
    results = []
    for cell, vid in zip(grids.cells, ids, strict=True):
        version = tree.get(vid)
        # the eight cells ran as one UNet batch, which the recipe records
        assert version.recipe == cell.recipe.with_changes(batch=8) and not version.partial
        assert version.recipe.seed == SEEDS[cell.row // 2], "seeds stay fixed across the axes"
        assert version.recipe.guidance == (3.0, 7.0)[cell.column]
        assert ("blue" in version.recipe.prompt) == (cell.row % 2 == 1)
        result = tree.result(vid)
        assert np.array_equal(result, _render(tiny_sampler, version.recipe)), cell.label
        results.append(result.tobytes())
    assert len(set(results)) == 8
    positions = {
        vid: view.grid.getItemPosition(view.grid.indexOf(view.cells[vid]))[:2] for vid in ids
    }
    assert [positions[vid] for vid in ids] == [(c.row + 1, c.column + 1) for c in grids.cells]


def test_clicking_a_cell_opens_its_version_and_the_grid_exports_as_one_image(
    qtbot, window, tmp_path
):
    grids, ids = _make_grid(qtbot, window)
    target = ids[5]
    qtbot.mouseClick(grids.view.cells[target], Qt.MouseButton.LeftButton)
    assert window.session.view.version_id == target
    assert window.stack.currentWidget() is window.version_view
    assert window.versions.selected_ids() == [target]
    grids.show_action.trigger()
    assert window.stack.currentWidget() is grids.view

    out = tmp_path / "grid.png"
    grids.ask_export_path = lambda: str(out)
    with qtbot.waitSignal(grids.exported, timeout=GENERATION_TIMEOUT_MS) as written:
        assert grids.export()
    assert written.args == [str(out), ""]
    sheet = np.asarray(Image.open(out).convert("RGB"))
    tree = window.session.tree
    for cell, vid in zip(grids.cells, ids, strict=True):
        result = tree.result(vid)
        x, y = cell_origin(cell, (result.shape[1], result.shape[0]))
        assert np.array_equal(sheet[y : y + result.shape[0], x : x + result.shape[1]], result)
    label_strip = sheet[:, :100]
    assert (label_strip < 128).any(), "the row labels are drawn"
