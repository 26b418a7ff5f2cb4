"""The Lineage dock: the version graph (:class:`~studio.ui.lineage_view.LineageView`)
beside the Versions panel; a click on a node puts that version on view."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QScrollArea

from studio.session import Session
from studio.ui.lineage_view import LineageView

LINEAGE_SHORTCUT = "Ctrl+Shift+L"


class LineageActions(QObject):
    """Builds the dock, tabbed with ``versions_dock``, and its View menu toggle."""

    def __init__(self, session: Session, window: QMainWindow, versions_dock: QDockWidget) -> None:
        super().__init__(window)
        self._session = session
        self.view = LineageView(session.tree, lambda: session.view.version_id)
        area = QScrollArea()
        area.setWidget(self.view)
        area.setWidgetResizable(True)
        area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.dock = QDockWidget("Lineage", window)
        self.dock.setObjectName("lineage_dock")
        self.dock.setWidget(area)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        window.tabifyDockWidget(versions_dock, self.dock)
        versions_dock.raise_()
        self.toggle = self.dock.toggleViewAction()
        self.toggle.setShortcut(QKeySequence(LINEAGE_SHORTCUT))
        self.toggle.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        window.addAction(self.toggle)
        self.view.version_clicked.connect(session.show_version)
        session.view.version_changed.connect(lambda _vid: self.view.update())

    def place_in(self, view_menu: QMenu) -> None:
        view_menu.addAction(self.toggle)
