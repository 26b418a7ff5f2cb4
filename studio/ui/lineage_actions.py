"""The Lineage dock: the version graph (:class:`~studio.ui.lineage_view.LineageView`)
beside the Versions panel; a click on a node puts that version on view."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
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
        self.toggle = QAction("Lineage", window, checkable=True)
        self.toggle.setShortcut(QKeySequence(LINEAGE_SHORTCUT))
        self.toggle.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.toggle.triggered.connect(self._bring_forward_or_hide)
        self.dock.visibilityChanged.connect(self.toggle.setChecked)
        window.addAction(self.toggle)
        self.view.version_clicked.connect(session.show_version)
        session.view.version_changed.connect(lambda _vid: self.view.update())

    def place_in(self, view_menu: QMenu) -> None:
        view_menu.addAction(self.toggle)

    def _bring_forward_or_hide(self) -> None:
        """Show the dock in front of its tab group; only a dock already in front hides.

        A plain visibility toggle would hide a dock that sits behind the Versions tab,
        which is the opposite of what asking for it means."""
        in_front = self.dock.isVisible() and not self.dock.visibleRegion().isEmpty()
        if in_front:
            self.dock.hide()
        else:
            self.dock.show()
            self.dock.raise_()
        self.toggle.setChecked(not in_front)
