"""The version tree and its undo commands, without a model (steps hold placeholder checkpoints)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QUndoStack

from studio.document.commands import AddVersionCommand, DeleteVersionCommand, RenameVersionCommand
from studio.document.versions import StepRef, StepStore, Version, VersionError, VersionTree
from studio.engine.recipe import Recipe
from studio.protocol import StepRecord

RECIPE = Recipe("a red fox", seed=3, steps=4, width=32, height=32)


def step(index: int, total: int = 4) -> StepRecord:
    pixels = np.full((4, 4, 3), index, np.uint8)
    return StepRecord(
        index, total, float(999 - index), None, b"checkpoint-%d" % index, pixels, pixels
    )


def grown(
    tree: VersionTree, parent: Version | None = None, branch_step: int | None = None
) -> Version:
    version = tree.new_version(RECIPE, parent.id if parent else None, branch_step)
    tree.add(version)
    first = 0 if branch_step is None else branch_step + 1
    for index in range(first, 4):
        tree.append_step(version.id, step(index))
    tree.finish(version.id, np.zeros((32, 32, 3), np.uint8), partial=False)
    return version


@pytest.fixture
def tree(qapp) -> VersionTree:
    return VersionTree()


def record(tree: VersionTree) -> list[tuple]:
    events: list[tuple] = []
    tree.version_added.connect(lambda vid: events.append(("added", vid)))
    tree.version_removed.connect(lambda vid: events.append(("removed", vid)))
    tree.version_renamed.connect(lambda vid, name: events.append(("renamed", vid, name)))
    tree.step_appended.connect(lambda vid, index: events.append(("step", vid, index)))
    tree.version_finished.connect(lambda vid: events.append(("finished", vid)))
    return events


def test_every_change_is_signalled(tree):
    events = record(tree)
    version = grown(tree)
    tree.rename(version.id, "dawn")
    tree.remove(version.id)
    vid = version.id
    assert events == [
        ("added", vid),
        ("step", vid, 0),
        ("step", vid, 1),
        ("step", vid, 2),
        ("step", vid, 3),
        ("finished", vid),
        ("renamed", vid, "dawn"),
        ("removed", vid),
    ]


def test_default_names_count_up_and_survive_removal(tree):
    first = grown(tree)
    second = grown(tree)
    tree.remove(second.id)
    assert (first.name, second.name, tree.new_version(RECIPE).name) == ("v1", "v2", "v3")


def test_a_branch_inherits_its_parents_steps_up_to_the_branch_point(tree):
    parent = grown(tree)
    child = grown(tree, parent, branch_step=1)
    grandchild = grown(tree, child, branch_step=2)
    assert child.step_indices == [2, 3]
    trajectory = tree.trajectory(grandchild.id)
    assert [s.index for s in trajectory] == [0, 1, 2, 3]
    assert trajectory[0] == StepRef(parent.id, 0)
    assert trajectory[2] == StepRef(child.id, 2)
    assert trajectory[3] == StepRef(grandchild.id, 3)
    assert tree.step(grandchild.id, 0) is tree.step(parent.id, 0)
    assert tree.step(grandchild.id, 2) is tree.step(child.id, 2)
    assert tree.step(grandchild.id, 3).checkpoint == b"checkpoint-3"
    assert tree.step_owner(grandchild.id, 1) is parent
    assert tree.step_owner(grandchild.id, 2) is child
    assert tree.step_owner(grandchild.id, 3) is grandchild
    assert tree.children(parent.id) == [child]
    assert tree.descendants(parent.id) == [child, grandchild]


def test_tree_refuses_broken_edits(tree):
    parent = grown(tree)
    grown(tree, parent, branch_step=0)
    with pytest.raises(VersionError):
        tree.remove(parent.id)  # still has a branch
    with pytest.raises(VersionError):
        tree.add(parent)  # already there
    with pytest.raises(VersionError):
        tree.new_version(RECIPE, parent.id, None)
    with pytest.raises(VersionError):
        tree.get("nope")


def test_a_tree_without_a_file_keeps_its_steps_in_memory(tree):
    version = grown(tree)
    tree.steps.release(version.id, 2)
    tree.steps.release(version.id)
    assert tree.step(version.id, 2).checkpoint == b"checkpoint-2"
    assert tree.result(version.id) is not None
    assert tree.steps.held_count() == 5


def test_released_steps_are_read_through_the_loader_into_a_small_cache(qapp):
    class File:
        def __init__(self) -> None:
            self.reads: list[tuple[str, int]] = []

        def load_step(self, version_id: str, index: int) -> StepRecord:
            self.reads.append((version_id, index))
            return step(index)

        def load_result(self, version_id: str) -> np.ndarray | None:
            return None

    file = File()
    tree = VersionTree(steps=StepStore(file, cache_size=2))
    version = grown(tree)
    for index in range(4):
        tree.steps.release(version.id, index)
    assert tree.steps.held_count() == 1, "only the result is still held"
    assert tree.step(version.id, 1).checkpoint == b"checkpoint-1"
    tree.step(version.id, 1)
    assert file.reads == [(version.id, 1)]
    tree.step(version.id, 2)
    tree.step(version.id, 3)
    tree.step(version.id, 1)
    assert file.reads[-1] == (version.id, 1), "evicted from a cache of two, read again"


def test_add_command_undo_removes_the_version_and_redo_restores_the_same_object(tree):
    stack = QUndoStack()
    version = grown(tree)  # a generation adds its version first, then pushes the command
    stack.push(AddVersionCommand(tree, version))
    assert stack.text(0) == "Generate v1"
    stack.undo()
    assert version.id not in tree
    stack.redo()
    assert tree.get(version.id) is version
    assert version.step_indices == [0, 1, 2, 3]
    assert tree.step(version.id, 3).checkpoint == b"checkpoint-3"


def test_delete_command_removes_the_subtree_and_undo_restores_it(tree):
    stack = QUndoStack()
    parent = grown(tree)
    child = grown(tree, parent, branch_step=1)
    grandchild = grown(tree, child, branch_step=2)
    other = grown(tree)
    events = record(tree)
    stack.push(DeleteVersionCommand(tree, child.id))
    assert [v.id for v in tree.versions()] == [parent.id, other.id]
    assert events == [("removed", grandchild.id), ("removed", child.id)]
    stack.undo()
    assert tree.get(grandchild.id).parent_id == child.id
    assert tree.trajectory(grandchild.id)[0] == StepRef(parent.id, 0)
    assert tree.step(grandchild.id, 0).checkpoint == b"checkpoint-0"
    stack.redo()
    assert child.id not in tree and grandchild.id not in tree


def test_rename_commands_merge_and_undo_to_the_first_name(tree):
    stack = QUndoStack()
    version = grown(tree)
    stack.push(RenameVersionCommand(tree, version.id, "d"))
    stack.push(RenameVersionCommand(tree, version.id, "da"))
    stack.push(RenameVersionCommand(tree, version.id, "dawn"))
    assert stack.count() == 1
    assert version.name == "dawn"
    stack.undo()
    assert version.name == "v1"
    stack.redo()
    assert version.name == "dawn"


def test_undoing_a_parent_generation_also_removes_its_branches(tree):
    stack = QUndoStack()
    parent = grown(tree)
    stack.push(AddVersionCommand(tree, parent))
    child = grown(tree, parent, branch_step=0)
    stack.push(AddVersionCommand(tree, child))
    stack.undo()
    stack.undo()
    assert len(tree) == 0
    stack.redo()
    stack.redo()
    assert tree.get(child.id).parent_id == parent.id
