"""Breeding in the window: the Breed action, the brood page and the Versions panel's entry.

Receives the session and the widgets it acts through (the pages, the versions
panel), never the window. Breeding goes through :meth:`Session.breed`; the
brood on view is a :class:`~studio.brood.BroodState` the page follows.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget

from studio.brood import BroodState
from studio.engine.recipe import RecipeError
from studio.session import Session
from studio.ui.brood_view import BroodView
from studio.ui.pages import Pages
from studio.ui.versions_panel import VersionsPanel

BREED_SHORTCUT = "Ctrl+Shift+B"
CROSS_SHORTCUT = "Ctrl+Shift+X"


class BroodActions(QObject):
    """The Breed action (selected versions, or the one on view) and "Breed from picked"."""

    def __init__(
        self, session: Session, pages: Pages, versions: VersionsPanel, window: QWidget
    ) -> None:
        super().__init__(window)
        self._session, self._pages, self._versions = session, pages, versions
        self.state = BroodState(self)
        self.view = BroodView(session.tree, self.state)
        pages.add_brood_page(self.view)
        self.breed_action = QAction("Breed from selected", window)
        self.breed_action.setShortcut(QKeySequence(BREED_SHORTCUT))
        self.breed_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.breed_action.setToolTip(
            "A brood of children crossing the selected versions' noises, each with a dose of "
            "fresh noise"
        )
        window.addAction(self.breed_action)
        self.cross_action = QAction("Cross at this step", window)
        self.cross_action.setShortcut(QKeySequence(CROSS_SHORTCUT))
        self.cross_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.cross_action.setToolTip(
            "A child of the two selected versions crossed at the timeline's step: the mix of "
            "their latents there, with the brood's dose of fresh noise"
        )
        window.addAction(self.cross_action)

        self.cross_action.triggered.connect(self.cross_selected)
        self.breed_action.triggered.connect(self.breed_selected)
        versions.breed_requested.connect(self.breed)
        versions.version_activated.connect(lambda _vid: self.state.set_shown(False))
        self.view.breed_requested.connect(self.breed_from_picked)
        self.view.closed.connect(lambda: self.state.set_shown(False))
        self.state.shown_changed.connect(self._show_page)
        pages.stack.currentChanged.connect(self._on_page_changed)
        session.tree.version_removed.connect(self.state.forget)

    def place_in(self, menu: QMenu) -> None:
        menu.addSeparator()
        menu.addAction(self.breed_action)
        menu.addAction(self.cross_action)

    def breed_selected(self) -> list[str]:
        current = self._session.view.version_id
        return self.breed(self._versions.selected_ids() or ([current] if current else []))

    def cross_selected(self) -> str | None:
        """Cross the two selected versions at the step the timeline shows, with the brood's
        dose, and show the child; returns its version id (None, with a status message,
        when it cannot run)."""
        session = self._session
        selected = [vid for vid in self._versions.selected_ids() if vid in session.tree]
        step = session.step_at(session.view.position)
        if len(selected) != 2 or step is None:
            session.status.emit("Select two versions and a step on the timeline to cross.", 5000)
            return None
        try:
            child = session.cross(
                selected[0],
                selected[1],
                step.index,
                self.state.dose,
                mix_prompts=self.state.mix_prompts,
            )
        except RecipeError as exc:
            session.status.emit(f"Cannot cross: {exc}", 8000)
            return None
        names = " and ".join(session.tree.get(vid).name for vid in selected)
        session.status.emit(
            f"Crossing {names} at step {step.index + 1} / {step.total}, "
            f"dose {self.state.dose:.2f}…",
            5000,
        )
        return child

    def breed_from_picked(self) -> list[str]:
        return self.breed(self.state.picks)

    def breed(self, parent_ids: Sequence[str]) -> list[str]:
        """A brood of the state's size and dose from ``parent_ids``, shown at once;
        returns the children's version ids (none, with a status message, if it cannot run)."""
        session, state = self._session, self.state
        parent_ids = [vid for vid in parent_ids if vid in session.tree]
        if not parent_ids:
            session.status.emit("Select or pick one or more versions to breed from.", 5000)
            return []
        try:
            children = session.breed(
                parent_ids, state.size, state.dose, mix_prompts=state.mix_prompts
            )
        except RecipeError as exc:
            session.status.emit(f"Cannot breed: {exc}", 8000)
            return []
        state.set_brood(children, session.origins.generation(children[0]))
        state.set_shown(True)
        names = ", ".join(session.tree.get(vid).name for vid in parent_ids)
        session.status.emit(
            f"Breeding {len(children)} children of {names} at dose {state.dose:.2f}…", 5000
        )
        return children

    def _show_page(self, shown: bool) -> None:
        if shown:
            self._pages.stack.setCurrentWidget(self.view)
            self.view.setFocus()
        elif self._pages.stack.currentWidget() is self.view:
            self._pages.stack.setCurrentWidget(self._pages.version_view)

    def _on_page_changed(self, _index: int) -> None:
        if self._pages.stack.currentWidget() is not self.view:
            self.state.set_shown(False)  # compare or the canvas took the centre
