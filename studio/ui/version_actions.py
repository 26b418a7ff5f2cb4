"""What the user does to versions: branch, resume, use a version's settings, rename, delete.

Receives the session and the widgets it acts through (the prompt panel, the
versions panel), never the window. Questions to the user go through ``ask_*``
methods, which tests replace.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDockWidget, QMessageBox, QWidget

from studio.session import Session
from studio.ui.prompt_panel import PromptPanel
from studio.ui.versions_panel import VersionsPanel


class VersionActions(QObject):
    """Turns the user's version requests into session calls and panel changes."""

    def __init__(
        self,
        session: Session,
        panel: PromptPanel,
        versions: VersionsPanel,
        prompt_dock: QDockWidget,
        versions_dock: QDockWidget,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self._session, self._panel, self._versions = session, panel, versions
        self._prompt_dock, self._versions_dock, self._parent = prompt_dock, versions_dock, parent
        versions.branch_requested.connect(self.branch_from_version)
        versions.use_settings_requested.connect(self.use_settings)
        versions.resume_requested.connect(self.resume)
        versions.delete_requested.connect(self.delete)
        session.tree.version_removed.connect(self._on_version_removed)
        session.view.position_changed.connect(self._follow_timeline)
        session.view.version_changed.connect(self._follow_timeline)

    def branch_from_position(self, position: int) -> None:
        """Enter branch mode at step ``position`` of the version on view."""
        version = self._session.current_version()
        target = self._session.branch_target(position)
        if version is None or target is None:
            return
        self._panel.enter_branch_mode(target[0], version.recipe, target[1])
        self._prompt_dock.show()
        self._panel.prompt.setFocus()

    def branch_from_version(self, version_id: str) -> None:
        if version_id != self._session.view.version_id:
            self._session.show_version(version_id)
        self.branch_from_position(self._session.view.position)

    def use_settings(self, version_id: str | None = None) -> None:
        """Load a version's recipe into the panel (A1111's "send to txt2img")."""
        version_id = version_id or self._session.view.version_id
        if version_id not in self._session.tree:
            return
        if self._panel.branch_target() is not None:
            self._panel.leave_branch_mode()
        version = self._session.tree.get(version_id)
        self._panel.set_recipe(version.recipe)
        self._prompt_dock.show()
        self._session.status.emit(f"Loaded the settings of {version.name}.", 5000)

    def resume(self, version_id: str | None = None) -> int | None:
        """Continue a stopped version exactly from its last stored step."""
        version_id = version_id or self._session.view.version_id
        job = self._session.resume(version_id) if version_id else None
        if job is None:
            self._session.status.emit("There is no stopped version to resume.", 5000)
        return job

    def delete(self, version_id: str) -> None:
        tree = self._session.tree
        if version_id not in tree:
            return
        branches = len(tree.descendants(version_id))
        if branches and not self.ask_delete_with_branches(tree.get(version_id).name, branches):
            return
        self._session.delete_version(version_id)

    def delete_selected(self) -> None:
        current = self._session.view.version_id
        for version_id in self._versions.selected_ids() or ([current] if current else []):
            self.delete(version_id)

    def rename_current(self) -> None:
        current = self._session.view.version_id
        item = self._versions.item(current) if current else None
        if item is not None:
            self._versions_dock.show()
            self._versions.view.editItem(item, 0)

    def ask_delete_with_branches(self, name: str, branches: int) -> bool:
        noun = "branch" if branches == 1 else "branches"
        answer = QMessageBox.question(
            self._parent,
            "Delete version",
            f"Delete {name} and its {branches} {noun}? Undo brings them back.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def _follow_timeline(self, *_args: object) -> None:
        """In branch mode the branch point is the step the timeline shows."""
        if self._panel.branch_target() is None:
            return
        target = self._session.branch_target(self._session.view.position)
        if target is not None:
            self._panel.move_branch_point(*target)

    def _on_version_removed(self, version_id: str) -> None:
        target = self._panel.branch_target()
        if target is not None and target.version_id == version_id:
            self._panel.leave_branch_mode()
