"""The Versions panel's order: creation (the tree) or ranked by the versions' scores,
or by a scorer plug-in's value ("By clip") once some version has one.

Keeps the panel in step with :attr:`TasteState.panel_key <studio.scores.TasteState>`,
the explore ↔ exploit mix the Scores dock sets and the scores in the tree (those
computed now and those read back from the project file, which need no rescoring).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from studio.scores import PLUGIN_ORDER, TasteState, panel_order, plugin_names
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
        # a burst of versions or scores (a project opening, a brood scored) ranks once
        self._soon = QTimer(self, singleShot=True, interval=0)
        self._soon.timeout.connect(self.apply)
        tree = session.tree
        for signal in (tree.scores_changed, tree.version_added, tree.version_removed):
            signal.connect(self._apply_soon)
        session.scores_changed.connect(self._apply_soon)
        self._on_key(state.panel_key)

    def _apply_soon(self, *_args: object) -> None:
        if self._state.panel_key == "created":
            self.apply()  # the tree's own order: nothing is ranked
        else:
            self._soon.start()

    def apply(self, *_args: object) -> None:
        self._soon.stop()
        names = plugin_names(self._session.scores)
        self._panel.show_plugin_orders(names)
        key = self._state.panel_key
        if key.startswith(PLUGIN_ORDER) and key.removeprefix(PLUGIN_ORDER) not in names:
            self._state.set_panel_key("created")  # its values are gone (undone, deleted)
            return
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
