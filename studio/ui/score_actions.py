"""Scoring in the window: the Score action, the Scores dock and ordering the brood by score.

Receives the session and the widgets it acts through (the versions panel, the
brood actions), never the window's attributes. Scoring goes through
:meth:`Session.score`; what the dock shows is a :class:`~studio.scores.TasteState`.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QScrollArea

from studio.scores import SCORE_COSTS, TasteState, cost_text, evaluations_per_image, ordered
from studio.session import Session
from studio.ui.brood_actions import BroodActions
from studio.ui.plugin_settings import PluginSettingsDialog, stored_plugins
from studio.ui.scores_view import ScoresView
from studio.ui.version_order import VersionOrder
from studio.ui.versions_panel import VersionsPanel

SCORE_SHORTCUT = "Ctrl+Shift+F"
COST_KEY = "scores/cost"
"""QSettings: the Scores dock's cost, a key of ``studio.scores.SCORE_COSTS``."""


class ScoreActions(QObject):
    """The "Score these" action (the brood on view, else the selected versions, else the one on view),
    the Scores dock beside the Versions panel, "Order brood by score" and "Score plug-ins…"
    (the optional plug-ins "Score these" also runs, see :mod:`studio.ui.plugin_settings`)."""

    def __init__(
        self,
        session: Session,
        window: QMainWindow,
        versions: VersionsPanel,
        versions_dock: QDockWidget,
        broods: BroodActions,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__(window)
        self._session, self._versions, self._broods = session, versions, broods
        self._settings, self._window = settings, window
        self.plugin_dialog: PluginSettingsDialog | None = None
        self.state = TasteState(self)
        stored = str(settings.value(COST_KEY, "")) if settings is not None else ""
        if stored in SCORE_COSTS:
            self.state.set_cost(stored)
        if settings is not None:
            self.state.cost_changed.connect(lambda key: settings.setValue(COST_KEY, key))
        self.version_order = VersionOrder(session, self.state, versions)
        self.view = ScoresView(
            session.tree, session.scores, self.state, lambda: session.view.version_id
        )
        self.dock = QDockWidget("Scores", window)
        self.dock.setObjectName("scores_dock")
        # in a scroll area, so the tab it shares with Versions never widens the window
        area = QScrollArea()
        area.setWidget(self.view)
        area.setWidgetResizable(True)
        area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.dock.setWidget(area)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        window.tabifyDockWidget(versions_dock, self.dock)
        versions_dock.raise_()
        self.score_action = QAction("Score these", window)
        self.score_action.setShortcut(QKeySequence(SCORE_SHORTCUT))
        self.score_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.score_action.setToolTip(self.view.score_button.toolTip())
        window.addAction(self.score_action)
        self.plugins_action = QAction("Score plug-ins…", window)
        self.plugins_action.setToolTip(
            "Optional CLIP score and aesthetic head from folders on this computer"
        )
        self.plugins_action.setEnabled(settings is not None)
        self.plugins_action.triggered.connect(self.edit_plugins)

        self.score_action.triggered.connect(self.score_these)
        self.view.score_requested.connect(self.score_these)
        self.view.version_clicked.connect(self.show_version)
        self.view.order_brood_requested.connect(self.order_brood)
        session.scores_changed.connect(self.view.refresh)
        session.tree.scores_changed.connect(self.view.refresh)  # undo, reopening, other setters
        session.score_progress.connect(self.view.set_progress)
        session.view.version_changed.connect(lambda _vid: self.view.plot.update())
        session.tree.version_removed.connect(self.state.forget)
        # stored scores (a reopened project's) show in the dock without rescoring
        self._adopting: list[str] = []
        self._adopt_timer = QTimer(self)
        self._adopt_timer.setSingleShot(True)
        self._adopt_timer.setInterval(0)
        self._adopt_timer.timeout.connect(self._adopt_stored)
        session.tree.version_added.connect(self._on_version_added)
        for version in session.tree:
            self._on_version_added(version.id)
        broods.state.shown_changed.connect(lambda _shown: self._enable_order())
        broods.state.brood_changed.connect(self._enable_order)
        self._enable_order()

    def place_in(self, menu: QMenu, view_menu: QMenu) -> None:
        menu.addAction(self.score_action)
        menu.addAction(self.plugins_action)
        view_menu.addAction(self.dock.toggleViewAction())

    def targets(self) -> list[str]:
        """What "Score these" scores: the brood on view, else the selection, else the version on view."""
        brood = self._broods.state
        if brood.shown and brood.children:
            return list(brood.children)
        current = self._session.view.version_id
        return self._versions.selected_ids() or ([current] if current else [])

    def score_these(self) -> list[int]:
        """Score :meth:`targets` and show them in the dock; returns the job ids."""
        session = self._session
        targets = [vid for vid in self.targets() if vid in session.tree]
        timesteps, noises = self.state.cost
        plugins = stored_plugins(self._settings)
        job_ids = session.score(targets, timesteps=timesteps, noises=noises, plugins=plugins)
        if not job_ids:
            session.status.emit("Nothing to score: select versions with at least one step.", 5000)
            return []
        self.state.set_versions(targets)
        self.dock.show()
        self.dock.raise_()
        count, cost = len(targets), self.state.cost
        session.status.emit(
            f"Scoring {count} version{'s' if count != 1 else ''} at {cost_text(cost)} "
            f"({evaluations_per_image(cost)} UNet evaluations each)…",
            5000,
        )
        return job_ids

    def edit_plugins(self) -> PluginSettingsDialog | None:
        """Open the "Score plug-ins…" dialog (window-modal, not blocking); returns it."""
        if self._settings is None:
            return None
        if self.plugin_dialog is None:
            self.plugin_dialog = PluginSettingsDialog(self._settings, self._window)
        self.plugin_dialog.open()
        return self.plugin_dialog

    def show_version(self, version_id: str) -> None:
        """Select a version; a brood on view stays up, its cursor on the version."""
        brood = self._broods.state
        if version_id in brood.children:
            brood.set_cursor(brood.children.index(version_id))
        self._session.show_version(version_id)

    def order_brood(self) -> None:
        """The brood's cells in the order of the combined score; unscored children last."""
        brood = self._broods.state
        best = ordered(
            self._session.scores, brood.children, "combined", self.state.explore, self.state.cost
        )
        brood.reorder([*best, *(vid for vid in brood.children if vid not in best)])

    def _on_version_added(self, version_id: str) -> None:
        if self._session.tree.scores(version_id) is not None:
            self._adopting.append(version_id)
            self._adopt_timer.start()  # a project's versions arrive together: one refresh

    def _adopt_stored(self) -> None:
        """Put the versions that arrived with stored scores on the map and in the list."""
        tree, adopting = self._session.tree, self._adopting
        self._adopting = []
        fresh = [vid for vid in adopting if vid in tree and tree.scores(vid) is not None]
        if fresh:
            self.state.set_versions([*self.state.version_ids, *fresh])

    def _enable_order(self) -> None:
        brood = self._broods.state
        self.view.order_brood_button.setEnabled(brood.shown and bool(brood.children))
