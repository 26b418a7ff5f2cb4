"""Undoable edits of the document, one QUndoCommand per user action.

All document edits a user can undo go through one ``QUndoStack`` owned by the
window. The commands hold the objects they removed, so undo puts back exactly
what was there (same ids, same stored steps), and the tree emits its usual
signals either way.
"""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from studio.document.versions import Version, VersionTree


def _add_label(version: Version) -> str:
    """The History entry of a new version: how it came to be."""
    if version.is_bred and version.recipe.cross is not None:
        return f"Cross {version.name} at step {version.recipe.cross.step_index + 1}"
    if version.is_bred:
        return f"Breed {version.name}"
    return f"Branch {version.name}" if version.is_branch else f"Generate {version.name}"


class AddVersionCommand(QUndoCommand):
    """Add a version to the tree.

    A generation puts its version in the tree as soon as it starts, so that its
    steps can be shown and stored while they arrive; the command is pushed when
    the run ends. Its first ``redo`` therefore leaves a version that is already
    in the tree as it is.
    """

    def __init__(self, tree: VersionTree, version: Version, parent: QUndoCommand | None = None):
        super().__init__(_add_label(version), parent)
        self._tree = tree
        self._version = version

    def redo(self) -> None:
        if self._version.id not in self._tree:
            self._tree.add(self._version)

    def undo(self) -> None:
        if self._version.id in self._tree:
            for child in reversed(self._tree.descendants(self._version.id)):
                self._tree.remove(child.id)
            self._tree.remove(self._version.id)


class DeleteVersionCommand(QUndoCommand):
    """Delete a version and every branch below it; undo restores them all."""

    def __init__(self, tree: VersionTree, version_id: str, parent: QUndoCommand | None = None):
        version = tree.get(version_id)
        branches = tree.descendants(version_id)
        label = f"Delete {version.name}"
        if branches:
            label += f" and its {len(branches)} branch{'es' if len(branches) > 1 else ''}"
        super().__init__(label, parent)
        self._tree = tree
        self._removed: list[Version] = [version, *branches]

    def redo(self) -> None:
        for version in reversed(self._removed):
            if version.id in self._tree:
                self._tree.remove(version.id)

    def undo(self) -> None:
        for version in self._removed:
            if version.id not in self._tree:
                self._tree.add(version)


class RenameVersionCommand(QUndoCommand):
    """Rename a version; consecutive renames of the same version merge into one command."""

    ID = 0x5631

    def __init__(
        self, tree: VersionTree, version_id: str, name: str, parent: QUndoCommand | None = None
    ):
        version = tree.get(version_id)
        super().__init__(f"Rename {version.name} to {name}", parent)
        self._tree = tree
        self._version_id = version_id
        self._old = version.name
        self._new = name

    def id(self) -> int:
        return self.ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, RenameVersionCommand) or other._version_id != self._version_id:
            return False
        self._new = other._new
        self.setText(f"Rename {self._old} to {self._new}")
        return True

    def redo(self) -> None:
        self._tree.rename(self._version_id, self._new)

    def undo(self) -> None:
        self._tree.rename(self._version_id, self._old)
