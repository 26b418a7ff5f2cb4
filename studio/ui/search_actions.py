"""Early-pruned search in the window: the action, its settings, its progress and its survivors.

Receives the session and the widgets it acts through (the panel binding for the
recipe, the brood page that shows the candidates and then the survivors, the
versions panel that selects the survivors, the taste state for the explore ↔
exploit mix), never the window's attributes. The search itself is
:class:`studio.search.PrunedSearch`; this only asks, shows and cancels.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStatusBar,
    QWidget,
)

from studio.brood import MAX_CHILDREN
from studio.scores import TasteState
from studio.search import PrunedSearch, SearchReport
from studio.session import Session
from studio.ui.brood_actions import BroodActions
from studio.ui.panel_binding import PanelBinding
from studio.ui.versions_panel import VersionsPanel

SEARCH_SHORTCUT = "Ctrl+Shift+K"


@dataclass(frozen=True)
class SearchSettings:
    """How wide a search goes: ``candidates`` seeds run to ``percent`` % of the steps,
    the best ``keep`` continued to the end."""

    candidates: int = 32
    percent: int = 30
    keep: int = 4


class SearchDialog(QDialog):
    """Asks for :class:`SearchSettings`; keep is never more than the candidates."""

    def __init__(self, settings: SearchSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pruned search")
        self.candidates = QSpinBox()
        self.candidates.setRange(2, MAX_CHILDREN)
        self.candidates.setValue(settings.candidates)
        self.candidates.setToolTip("Seeds tried, one after another from the panel's seed")
        self.percent = QSpinBox()
        self.percent.setRange(5, 95)
        self.percent.setSuffix(" % of the steps")
        self.percent.setValue(settings.percent)
        self.percent.setToolTip("Where the candidates are ranked: their x0-hat at that step")
        self.keep = QSpinBox()
        self.keep.setRange(1, MAX_CHILDREN)
        self.keep.setValue(min(settings.keep, settings.candidates))
        self.keep.setToolTip("How many of the best are continued to the end")
        self.candidates.valueChanged.connect(lambda n: self.keep.setMaximum(n))
        self.keep.setMaximum(self.candidates.value())
        form = QFormLayout(self)
        form.addRow("Candidates", self.candidates)
        form.addRow("Rank at", self.percent)
        form.addRow("Keep", self.keep)
        form.addRow(
            QLabel("Ranked by the combined score at the Scores dock's explore ↔ exploit mix.")
        )
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Search")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def settings(self) -> SearchSettings:
        return SearchSettings(self.candidates.value(), self.percent.value(), self.keep.value())


class SearchActions(QObject):
    """The "Pruned search…" action, a progress bar with Cancel in the status bar while
    it runs, and the survivors in the brood page and selected in the versions panel."""

    def __init__(
        self,
        session: Session,
        binding: PanelBinding,
        broods: BroodActions,
        versions: VersionsPanel,
        taste: TasteState,
        status_bar: QStatusBar,
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self._session, self._binding, self._broods = session, binding, broods
        self._versions, self._taste, self._window = versions, taste, window
        self.settings = SearchSettings()
        self.search: PrunedSearch | None = None
        self.last_report: SearchReport | None = None
        self.action = QAction("Pruned search…", window)
        self.action.setShortcut(QKeySequence(SEARCH_SHORTCUT))
        self.action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.action.setToolTip(
            "Run many seeds of the panel's recipe part way, rank them by their scores and "
            "finish only the best"
        )
        window.addAction(self.action)
        self.action.triggered.connect(self.ask_and_start)

        self.progress_box = QWidget()
        row = QHBoxLayout(self.progress_box)
        row.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar()
        self.progress.setFormat("search %v / %m steps")
        self.progress.setMaximumWidth(220)
        self.cancel_button = QPushButton("Cancel search")
        row.addWidget(self.progress)
        row.addWidget(self.cancel_button)
        self.progress_box.hide()
        status_bar.addPermanentWidget(self.progress_box)
        self.cancel_button.clicked.connect(self.cancel)

    def place_in(self, menu: QMenu) -> None:
        menu.addAction(self.action)

    def ask_settings(self) -> SearchSettings | None:
        """The user's settings for the next search, or None (tests replace this)."""
        dialog = SearchDialog(self.settings, self._window)
        return dialog.settings() if dialog.exec() == QDialog.DialogCode.Accepted else None

    def ask_and_start(self) -> PrunedSearch | None:
        if self.search is not None and self.search.running:
            self._session.status.emit("A pruned search is already running.", 5000)
            return None
        settings = self.ask_settings()
        if settings is None:
            return None
        self.settings = settings
        return self.start(settings)

    def start(self, settings: SearchSettings) -> PrunedSearch | None:
        """Search from the panel's recipe (its seed the first candidate's); None when the
        recipe is not valid (the panel says why) or a search is running."""
        session = self._session
        if self.search is not None and self.search.running:
            return None
        self._binding.panel.prepare_for_generation()
        recipe = self._binding.checked_recipe()
        if recipe is None:
            return None
        try:
            search = PrunedSearch(
                session,
                recipe,
                candidates=settings.candidates,
                keep=min(settings.keep, settings.candidates),
                fraction=settings.percent / 100,
                explore=self._taste.explore,
            )
        except ValueError as exc:
            session.status.emit(f"Cannot search: {exc}", 8000)
            return None
        self.search = search
        search.progress.connect(self._on_progress)
        search.finished.connect(self._on_finished)
        search.failed.connect(self._on_failed)
        self.progress.setRange(0, search.planned_steps)
        self.progress.setValue(0)
        self.progress_box.show()
        search.start()
        candidates = [session.jobs[j].version_id for j in search.candidate_job_ids]
        self._broods.state.set_brood(
            candidates,
            0,
            f"Pruned search: {settings.candidates} candidates → {settings.keep} kept "
            f"(ranked at step {search.prune_step} of {recipe.steps})",
        )
        self._broods.state.set_shown(True)
        session.status.emit(
            f"Pruned search: {settings.candidates} candidates to step {search.prune_step} "
            f"of {recipe.steps}, keeping {settings.keep}…",
            0,
        )
        return search

    def cancel(self) -> None:
        if self.search is not None:
            self.search.cancel()

    def _on_progress(self, done: int, planned: int) -> None:
        self.progress.setMaximum(planned)
        self.progress.setValue(done)

    def _on_finished(self, report: SearchReport) -> None:
        self.last_report = report
        self.progress_box.hide()
        survivors = [vid for vid in report.survivors if vid in self._session.tree]
        self._broods.state.set_brood(
            survivors, 0, f"Pruned search: {len(survivors)} kept, finished in full"
        )
        self._broods.state.set_shown(True)
        if survivors:
            self._versions.select(survivors[0])
            for vid in survivors[1:]:
                item = self._versions.item(vid)
                if item is not None:
                    item.setSelected(True)
        self._session.status.emit(
            f"Pruned search kept {len(survivors)} of {report.candidates} for "
            f"{report.share_of_full_runs:.0%} of the steps of full runs; the pruned stay "
            "partial (Resume finishes one).",
            15000,
        )

    def _on_failed(self, reason: str) -> None:
        self.progress_box.hide()
        self._session.status.emit(reason, 10000)
