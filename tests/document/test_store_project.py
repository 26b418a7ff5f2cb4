"""Project: the version tree and layer stack follow into the file, and come back from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QUndoStack

from studio.document.commands import AddVersionCommand, DeleteVersionCommand, RenameVersionCommand
from studio.document.layers import BlendMode, Layer, LayerStack
from studio.document.project import Project
from studio.document.store import ProjectStore
from studio.document.versions import VersionTree
from studio.engine.recipe import Recipe
from studio.protocol import StepRecord


def _step(index: int, total: int = 4) -> StepRecord:
    preview = np.full((8, 8, 3), index * 30, np.uint8)
    return StepRecord(
        index=index,
        total=total,
        timestep=999.0 - index,
        sigma=1.0 / (index + 1),
        checkpoint=f"checkpoint {index}".encode() * 100,
        preview_x0=preview,
        preview_xt=255 - preview,
    )


def _generate(
    tree: VersionTree, undo: QUndoStack, parent: str | None = None, branch: int | None = None
) -> str:
    """What the window does: add at start, append steps as they come, finish, push the command."""
    version = tree.new_version(Recipe("a cat", seed=len(tree), steps=4), parent, branch)
    tree.add(version)
    for i in range(0 if branch is None else branch + 1, 4):
        tree.append_step(version.id, _step(i))
    tree.finish(version.id, np.full((16, 16, 3), 77, np.uint8), partial=False)
    undo.push(AddVersionCommand(tree, version))
    return version.id


def test_edits_are_persisted_and_load_rebuilds_the_document(tmp_path: Path) -> None:
    path = tmp_path / "bound.studio"
    tree, layers, undo = VersionTree(), LayerStack(), QUndoStack()
    project = Project(ProjectStore.create(path), tree, layers)
    root = _generate(tree, undo)
    branch = _generate(tree, undo, root, 1)
    gone = _generate(tree, undo, root, 2)
    undo.push(RenameVersionCommand(tree, branch, "sunset"))
    undo.push(DeleteVersionCommand(tree, gone))
    bottom = Layer(np.full((4, 4, 4), 10, np.uint8), name="bottom", source_version=root)
    top = Layer(np.full((4, 4, 4), 20, np.uint8), name="top", source_version="elsewhere")
    layers.add(bottom)
    layers.add(top)
    layers.update(top.id, opacity=0.25, blend=BlendMode.MULTIPLY, offset=(2, -1))
    layers.move(top.id, 0)
    project.close()

    store = ProjectStore.open(path)
    loaded = Project.load(store)
    try:
        assert [v.id for v in loaded.tree] == [root, branch]
        again = loaded.tree.get(branch)
        assert again.name == "sunset" and again.parent_id == root and again.branch_step == 1
        assert again.step_indices == [2, 3]
        assert loaded.tree.trajectory(branch) == [(root, 0), (root, 1), (branch, 2), (branch, 3)]
        step = loaded.tree.step(branch, 2)
        assert np.array_equal(step.preview_x0, _step(2).preview_x0)
        assert np.array_equal(step.preview_xt, _step(2).preview_xt)
        assert step.checkpoint == _step(2).checkpoint
        assert (step.total, step.timestep, step.sigma) == (4, 997.0, 1 / 3)
        assert loaded.tree.step(branch, 0).checkpoint == _step(0).checkpoint, "inherited"
        assert np.array_equal(loaded.tree.result(branch), np.full((16, 16, 3), 77, np.uint8))
        assert again.has_result and again.finished and not again.partial
        assert [lay.name for lay in loaded.layers] == ["top", "bottom"]
        top_again = loaded.layers.layer(top.id)
        assert (top_again.opacity, top_again.blend, top_again.offset) == (
            0.25,
            BlendMode.MULTIPLY,
            (2, -1),
        )
        assert top_again.source_version is None, (
            "a link to a version outside the project is dropped"
        )
        assert loaded.layers.layer(bottom.id).source_version == root
        assert np.array_equal(top_again.pixels, top.pixels)
    finally:
        loaded.close()


def test_undo_of_delete_restores_the_versions_with_their_steps_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "undo.studio"
    tree, undo = VersionTree(), QUndoStack()
    project = Project(ProjectStore.create(path), tree)
    root = _generate(tree, undo)
    child = _generate(tree, undo, root, 0)
    project.store.flush()
    QCoreApplication.processEvents()  # the queued releases: the file alone holds the steps now
    assert tree.steps.held_count() == 0
    undo.push(DeleteVersionCommand(tree, root))
    project.store.flush()
    assert project.store.versions() == []
    undo.undo()
    project.store.flush()
    assert [v.id for v in project.store.versions()] == [root, child]
    assert project.store.step_indices(child) == [1, 2, 3]
    assert tree.get(child).step_indices == [1, 2, 3]
    assert tree.step(child, 3).checkpoint == _step(3).checkpoint
    assert tree.step(child, 0).checkpoint == _step(0).checkpoint, "inherited from the root"
    assert np.array_equal(tree.result(root), np.full((16, 16, 3), 77, np.uint8))
    undo.undo()  # the child's generation
    undo.redo()
    layer = Layer(np.zeros((2, 2, 4), np.uint8), name="L")
    project.layers.add(layer)
    project.layers.remove(layer.id)
    project.layers.insert(0, layer)
    project.close()
    with ProjectStore.open(path) as store:
        assert [v.id for v in store.versions()] == [root, child]
        assert [lay.id for lay in store.layers()] == [layer.id]


def test_a_write_failure_is_reported_as_a_signal(tmp_path: Path, qtbot) -> None:
    tree, undo = VersionTree(), QUndoStack()
    project = Project(ProjectStore.create(tmp_path / "full.studio"), tree)
    try:
        project.store.submit(
            lambda c: c.execute(
                "PRAGMA max_page_count = " + str(c.execute("PRAGMA page_count").fetchone()[0])
            )
        ).result()
        with qtbot.waitSignal(project.write_failed, timeout=10_000) as blocker:
            _generate(tree, undo)
        message, reason = blocker.args
        assert reason == "disk_full" and message.startswith("The disk is full")
        saved = tmp_path / "saved.studio"
        project.save_as(saved).result()
        assert project.name == "saved"
        assert project.store.step_indices(tree.versions()[0].id) == [0, 1, 2, 3]
    finally:
        project.close()


def test_a_reopened_checkpoint_resumes_exactly(tmp_path: Path, tiny_sampler) -> None:
    import torch

    from studio.engine.checkpoint import Checkpoint

    recipe = Recipe("a road", seed=5, steps=3, sampler="DPM++ 2M", width=16, height=16)
    steps = list(tiny_sampler.run(recipe))
    path = tmp_path / "lazy.studio"
    tree = VersionTree()
    project = Project(ProjectStore.create(path), tree)
    version = tree.new_version(recipe)
    tree.add(version)
    for s in steps:
        tree.append_step(
            version.id,
            StepRecord(
                s.index,
                s.total,
                s.timestep,
                s.sigma,
                s.checkpoint.to_bytes(),
                s.preview_x0,
                s.preview_xt,
            ),
        )
    project.close()
    loaded = Project.load(ProjectStore.open(path))
    try:
        stored = Checkpoint.from_bytes(loaded.tree.step(version.id, 0).checkpoint)
        resumed = list(tiny_sampler.run(recipe, start=stored))
        assert torch.equal(resumed[-1].latent, steps[-1].latent)
    finally:
        loaded.close()


class _CountingLoader:
    """Stands between a tree and its project, counting what is read from the file."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.steps: list[tuple[str, int]] = []
        self.results: list[str] = []

    def load_step(self, version_id: str, index: int) -> StepRecord:
        self.steps.append((version_id, index))
        return self.project.load_step(version_id, index)

    def load_result(self, version_id: str) -> np.ndarray | None:
        self.results.append(version_id)
        return self.project.load_result(version_id)


def _saved_project(path: Path) -> tuple[str, str]:
    tree, undo = VersionTree(), QUndoStack()
    project = Project(ProjectStore.create(path), tree)
    root = _generate(tree, undo)
    branch = _generate(tree, undo, root, 1)
    project.close()
    return root, branch


def test_opening_reads_no_step_and_no_result(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "lazy-open.studio"
    root, branch = _saved_project(path)
    store = ProjectStore.open(path)
    reads: list[str] = []

    def counted(name: str) -> Callable[..., object]:
        method = getattr(store, name)

        def read(*args: object, **kwargs: object) -> object:
            reads.append(name)
            return method(*args, **kwargs)

        return read

    for name in ("step", "step_checkpoint", "step_preview", "result", "result_png"):
        monkeypatch.setattr(store, name, counted(name))
    loaded = Project.load(store)
    try:
        assert reads == [], "opening reads neither steps nor results"
        assert loaded.tree.steps.held_count() == 0
        version = loaded.tree.get(branch)
        assert version.step_indices == [2, 3]
        assert version.thumbnail is not None
        assert np.array_equal(version.thumbnail, _step(3).preview_x0), "the last step's x0-hat"
        counting = _CountingLoader(loaded)
        loaded.tree.steps.loader = counting
        first = loaded.tree.step(branch, 3)
        again = loaded.tree.step(branch, 3)
        assert first is again and counting.steps == [(branch, 3)], "read once, then cached"
        assert first.checkpoint == _step(3).checkpoint
        assert loaded.tree.step(branch, 1).checkpoint == _step(1).checkpoint
        assert counting.steps[-1] == (root, 1), "an inherited step is read from its owner"
        assert loaded.tree.best_image(branch) is not None and counting.results == [branch]
    finally:
        loaded.close()


def test_a_written_step_leaves_memory_and_is_read_back_identical(tmp_path: Path, qtbot) -> None:
    tree = VersionTree()
    project = Project(ProjectStore.create(tmp_path / "release.studio"), tree)
    try:
        version = tree.new_version(Recipe("a cat", seed=1, steps=4))
        tree.add(version)
        with qtbot.waitSignal(project.stored, timeout=10_000) as blocker:
            tree.append_step(version.id, _step(0))
            assert tree.steps.held_count() == 1, "held until the file has it"
        assert blocker.args == [version.id, 0]
        assert tree.steps.held_count() == 0, "released on the UI thread once committed"
        back = tree.step(version.id, 0)
        assert back.checkpoint == _step(0).checkpoint
        assert np.array_equal(back.preview_x0, _step(0).preview_x0)
        assert np.array_equal(back.preview_xt, _step(0).preview_xt)
        result = np.full((16, 16, 3), 5, np.uint8)
        with qtbot.waitSignal(project.stored, timeout=10_000) as blocker:
            tree.finish(version.id, result, partial=True)
        assert blocker.args == [version.id, Project.RESULT]
        assert tree.steps.held_count() == 0
        assert np.array_equal(tree.result(version.id), result)
        assert project.store.version(version.id).partial
    finally:
        project.close()


@pytest.fixture(autouse=True)
def _qt_app(qapp):  # QUndoStack and queued signals need an application
    return qapp
