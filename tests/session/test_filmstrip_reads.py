"""Showing a long version from its project file: the filmstrip's thumbnails are read off the
UI thread (previews only, a chunk a query, never checkpoints), arrive afterwards and equal
the stored previews, while the UI thread reads a bounded number of rows, not one per step."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from studio.document.project import Project
from studio.document.store import ProjectStore
from studio.document.store.project_store import PREVIEWS_PER_QUERY
from studio.document.versions import thumbnail_of
from studio.engine.recipe import Recipe
from studio.protocol import StepRecord
from studio.session import Session
from tests.workers.harness import fake_worker

STEPS = 1000


def _preview(index: int, noisy: bool) -> np.ndarray:
    """A small preview that differs per step (and between x0-hat and x_t)."""
    image = np.zeros((12, 16, 3), np.uint8)
    image[..., 0] = index % 256
    image[..., 1] = index // 256
    image[..., 2] = 200 if noisy else 100
    return image


def _long_version(path: Path) -> str:
    store = ProjectStore.create(path)
    recipe = Recipe("a long walk", seed=7, steps=STEPS)
    version_id = store.add_version(recipe_json=recipe.to_json(), name="v1").result()
    for index in range(STEPS):
        store.append_step(
            version_id,
            StepRecord(
                index,
                STEPS,
                999.0 - index,
                None,
                b"checkpoint" * 200,
                _preview(index, False),
                _preview(index, True),
            ),
        )
    store.finish_version(version_id, None, partial=False).result()
    store.close()
    return version_id


@pytest.fixture(scope="module")
def long_project(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("filmstrip") / "long.studio"
    return path, _long_version(path)


@pytest.fixture
def opened(qapp, tmp_path, long_project):
    """A session (worker not started) bound to a copy of a project holding one 1000-step
    version (a closed project is one self-contained file)."""
    original, version_id = long_project
    path = tmp_path / "long.studio"
    shutil.copyfile(original, path)
    session = Session(fake_worker())
    store = ProjectStore.open(path)
    session.project = Project.load(store, session, tree=session.tree, layers=session.layers)
    yield session, store, version_id
    session.project.close()


def _count_reads(store: ProjectStore, monkeypatch) -> list[tuple[str, bool]]:
    """Every read of the store's rows: (method, on the UI thread)."""
    reads: list[tuple[str, bool]] = []
    ui_thread = threading.current_thread()

    def counted(name: str) -> Callable[..., object]:
        method = getattr(store, name)

        def read(*args: object, **kwargs: object) -> object:
            reads.append((name, threading.current_thread() is ui_thread))
            return method(*args, **kwargs)

        return read

    for name in ("step", "step_checkpoint", "step_preview", "step_previews", "result_png"):
        monkeypatch.setattr(store, name, counted(name))
    return reads


@pytest.mark.parametrize("static", [False, True])
def test_showing_a_long_version_reads_its_thumbnails_off_the_ui_thread(
    qtbot, opened, monkeypatch, static
):
    session, store, version_id = opened
    session.view.set_static(static)
    reads = _count_reads(store, monkeypatch)
    arrived: dict[int, np.ndarray] = {}
    session.thumbnails_read.connect(arrived.update)

    session.show_version(version_id)
    session.frame()  # what the version view draws: the last step
    thumbnails = session.thumbnails()

    on_ui = [name for name, ui in reads if ui]
    assert len(on_ui) <= 2, f"the UI thread read {len(on_ui)} rows: {on_ui}"
    assert len(thumbnails) == STEPS
    assert sum(t is None for t in thumbnails) == STEPS - 1, "placeholders, bar the step on view"
    qtbot.waitUntil(lambda: len(arrived) == STEPS - 1, timeout=30_000)
    kind = "xt" if static else "x0"
    for position in range(STEPS - 1):
        stored = store.step_preview_image(version_id, position, kind)
        assert np.array_equal(arrived[position], thumbnail_of(stored)), position
        assert np.array_equal(stored, _preview(position, static))
    off_ui = [name for name, ui in reads if not ui]
    assert off_ui == ["step_previews"] * -(-(STEPS - 1) // PREVIEWS_PER_QUERY)
    assert session.tree.steps.in_memory(version_id, 0) is None, "the LRU was not flooded"


def test_a_newer_version_on_view_drops_the_thumbnails_still_coming(qtbot, opened):
    session, _store, version_id = opened
    arrived: list[dict[int, np.ndarray]] = []
    session.thumbnails_read.connect(arrived.append)
    session.show_version(version_id)
    session.thumbnails()
    session.show_version(None)  # the trajectory on view is another now
    session.thumbnails()
    qtbot.wait(500)
    assert arrived == [], "thumbnails of the version no longer on view arrived"
