"""The version tree and its undo commands, without a model (steps hold placeholder checkpoints)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QUndoStack

from studio.document.commands import AddVersionCommand, DeleteVersionCommand, RenameVersionCommand
from studio.document.versions import StoredStep, Version, VersionError, VersionTree
from studio.engine.recipe import Recipe

RECIPE = Recipe("a red fox", seed=3, steps=4, width=32, height=32)


def step(index: int, total: int = 4) -> StoredStep:
    pixels = np.full((4, 4, 3), index, np.uint8)
    return StoredStep(
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
    assert [s.index for s in child.steps] == [2, 3]
    trajectory = tree.trajectory(grandchild.id)
    assert [s.index for s in trajectory] == [0, 1, 2, 3]
    assert trajectory[0] is parent.steps[0]
    assert trajectory[2] is child.steps[0]
    assert trajectory[3] is grandchild.steps[0]
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


def test_stored_step_gives_checkpoint_bytes_back_unchanged():
    assert step(2).checkpoint_bytes() == b"checkpoint-2"


def test_add_command_undo_removes_the_version_and_redo_restores_the_same_object(tree):
    stack = QUndoStack()
    version = grown(tree)  # a generation adds its version first, then pushes the command
    stack.push(AddVersionCommand(tree, version))
    assert stack.text(0) == "Generate v1"
    stack.undo()
    assert version.id not in tree
    stack.redo()
    assert tree.get(version.id) is version
    assert len(version.steps) == 4


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
    assert tree.trajectory(grandchild.id)[0] is parent.steps[0]
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
