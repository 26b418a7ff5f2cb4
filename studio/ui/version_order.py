"""The Versions panel's order: creation (the tree) or ranked by the versions' scores.

Keeps the panel in step with :attr:`TasteState.panel_key <studio.scores.TasteState>`,
the explore ↔ exploit mix the Scores dock sets and the scores in the tree (those
computed now and those read back from the project file, which need no rescoring).
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from studio.scores import TasteState, panel_order
from studio.session import Session
from studio.ui.versions_panel import VersionsPanel


class VersionOrder(QObject):
    """Wires the panel's Order box to ``state`` and re-ranks the panel when scores,
    versions or the mix change."""

    def __init__(self, session: Session, state: TasteState, panel: VersionsPanel) -> None:
        super().__init__(panel)
        self._session, self._state, self._panel = session, state, panel
        panel.order_requested.connect(state.set_panel_key)
        state.panel_key_changed.connect(self._on_key)
        state.explore_changed.connect(self.apply)
        state.cost_changed.connect(self.apply)
        tree = session.tree
        for signal in (tree.scores_changed, tree.version_added, tree.version_removed):
            signal.connect(self.apply)
        session.scores_changed.connect(self.apply)
        self._on_key(state.panel_key)

    def apply(self, *_args: object) -> None:
        key = self._state.panel_key
        if key == "created":
            self._panel.show_ranked(None)
            return
        session = self._session
        ids = [v.id for v in session.tree.versions()]
        self._panel.show_ranked(
            panel_order(session.scores, ids, key, self._state.explore, self._state.cost)
        )

    def _on_key(self, key: str) -> None:
        self._panel.show_order_key(key)
        self.apply()
