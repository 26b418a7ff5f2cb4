"""The studio window: layout and wiring of the panels to the session, nothing more.

The :class:`~studio.session.Session` owns the document, the worker and the
jobs in flight; its view state says what is on view. The window places the
widgets, turns user intent into session calls and keeps the panels in step
with the session's signals.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QScrollArea,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

from studio.engine.batching import DEFAULT_BATCH
from studio.engine.recipe import BUNDLED_MODEL, MAX_BATCH
from studio.protocol import QueueChanged as QueueChangedMessage
from studio.session import Session
from studio.ui.backend_settings import BackendSwitch, place_backend_action, worker_client
from studio.ui.brood_actions import BroodActions
from studio.ui.canvas_extension import CanvasExtension
from studio.ui.canvas_generation import CanvasGeneration
from studio.ui.canvas_workspace import CanvasWorkspace
from studio.ui.clipboard import ClipboardActions
from studio.ui.export_actions import ExportActions
from studio.ui.grid_actions import GridActions
from studio.ui.image_drop import ImageImporter
from studio.ui.lineage_actions import LineageActions
from studio.ui.mask_tool import MaskTool
from studio.ui.memory_saving_settings import place_memory_saving_action
from studio.ui.pages import Pages
from studio.ui.panel_binding import PanelBinding
from studio.ui.project_menu import ProjectSession
from studio.ui.prompt_panel import PromptPanel
from studio.ui.queue_view import QueueView
from studio.ui.score_actions import ScoreActions
from studio.ui.search_actions import SearchActions
from studio.ui.status_bar import StatusWidgets, flash_tab
from studio.ui.version_actions import VersionActions
from studio.ui.versions_panel import VersionsPanel
from studio.ui.window_actions import WindowActions

"""QSettings: {single-file path: the config folder the user paired it with}."""
GEOMETRY_KEY = "window/geometry"
DOCKS_KEY = "window/docks"
BATCH_KEY = "explore/batch"
"""QSettings: most children, cells or candidates per UNet batch (1: one at a time)."""
QUIT_WAIT_S = 10.0
"""How long quitting waits for the worker to stop (a run ends within one step; a model load may not)."""


class MainWindow(QMainWindow):
    """The studio window over one :class:`Session` (made with an in-process worker if none)."""

    def __init__(
        self,
        session: Session | None = None,
        settings: QSettings | None = None,
        model_ref: str = BUNDLED_MODEL,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Noise Studio")
        self.resize(_default_size())
        self.settings = settings or QSettings("Noise Studio", "Noise Studio")
        if session is None:
            session = Session(worker_client(self.settings), model_ref)
        self.session = session
        session.setParent(self)
        session.batch_size = _batch_size(self.settings)
        self._build_layout()
        self.actions_ = WindowActions(self, session.undo_stack)
        self.menus = self.actions_.build_menus(
            self,
            [
                self.prompt_dock,
                self.versions_dock,
                self.layers_dock,
                self.history_dock,
                self.queue_dock,
            ],
        )
        self.workspace = CanvasWorkspace(session, self)
        self.importer = ImageImporter(session, self, self.workspace)
        self.exports = ExportActions(session, self, self.workspace, self.settings)
        self._place_features()
        self.clipboard = ClipboardActions(session, self.workspace, self.pages, self)
        edit = self.menus["edit"]
        edit.insertActions(
            self.actions_.rename, [self.clipboard.copy_action, self.clipboard.paste_action]
        )
        edit.insertSeparator(self.actions_.rename)
        self.version_actions = VersionActions(
            session, self.panel, self.versions, self.prompt_dock, self.versions_dock, self
        )
        self.binding = PanelBinding(session, self.panel, self.prompt_dock, self.settings, self)
        self.importer.recipe_offered.connect(self.binding.offer_recipe)
        self.broods = BroodActions(session, self.pages, self.versions, self)
        self.broods.place_in(self.menus["generate"])
        self.scores = ScoreActions(
            session, self, self.versions, self.versions_dock, self.broods, self.settings
        )
        self.scores.place_in(self.menus["generate"], self.menus["view"])
        self.canvas_generation = CanvasGeneration(session, self.panel, self.workspace.panel, self)
        self.canvas_generation.place_in(self.menus["generate"])
        self.canvas_extension = CanvasExtension(session, self.panel, self)
        self.canvas_extension.place_in(self.workspace.menu, self.menus["generate"])
        self.searches = SearchActions(
            session, self.binding, self.broods, self.versions, self.scores.state,
            self.statusBar(), self,
        )  # fmt: skip
        self.searches.place_in(self.menus["generate"])
        self.grids = GridActions(session, self.binding, self.pages, self)
        self.grids.place_in(self.menus["generate"], self.menus["view"])
        self.lineage = LineageActions(session, self, self.versions_dock)
        self.lineage.place_in(self.menus["view"])
        self.backend = BackendSwitch(session, self.settings, self.binding.model_folders, self)
        place_backend_action(self.menus["generate"], self.settings, self.backend, self)
        place_memory_saving_action(self.menus["generate"], self.settings, session, self)
        self.mask_tool = MaskTool(session, self.workspace, self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.mask_tool.toolbar)
        self.menuBar().insertMenu(self.menus["generate"].menuAction(), self.mask_tool.menu)
        self.addActions(self.mask_tool.actions())
        self._connect()
        self._restore_layout()
        self.panel.select_model(session.model.ref)
        versions = session.tree.versions()
        session.show_version(versions[-1].id if versions else None)
        self.panel.prompt.setFocus()

    # ---- layout ----------------------------------------------------------------------

    def _build_layout(self) -> None:
        session = self.session
        self.pages = Pages(session)
        self.version_view, self.canvas = self.pages.version_view, self.pages.version_view.canvas
        self.compare, self.stack, self.timeline = (
            self.pages.compare,
            self.pages.stack,
            self.pages.timeline,
        )
        self.setCentralWidget(self.pages)

        self.panel = PromptPanel()
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(360)  # the form without a sideways scrollbar
        prompt_page = QWidget()  # the form scrolls; Generate and Cancel stay in view
        prompt_layout = QVBoxLayout(prompt_page)
        prompt_layout.setContentsMargins(0, 0, 0, 0)
        prompt_layout.setSpacing(0)
        prompt_layout.addWidget(scroll, 1)
        prompt_layout.addWidget(self.panel.button_row)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.prompt_dock = self._dock("Prompt", prompt_page, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.versions = VersionsPanel(session.tree, session.origins)
        self.versions_dock = self._dock("Versions", self.versions, right)
        self.layers_dock = self._dock("Layers", QLabel("Layers will appear here."), right)
        self.tabifyDockWidget(self.versions_dock, self.layers_dock)
        self.versions_dock.raise_()
        self.history = QUndoView(session.undo_stack)
        self.history.setEmptyLabel("<start>")
        self.history_dock = self._dock("History", self.history, right)
        self.queue = QueueView()
        self.queue_dock = self._dock("Queue", self.queue, right)
        self.tabifyDockWidget(self.history_dock, self.queue_dock)
        self.history_dock.raise_()
        self.resizeDocks(
            [self.versions_dock, self.history_dock], [480, 220], Qt.Orientation.Vertical
        )

        self.status_widgets = StatusWidgets(session, self.statusBar())
        self.model_label = self.status_widgets.model_label

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower() + "_dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _place_features(self) -> None:
        workspace = self.workspace
        self.pages.add_canvas_page(workspace.page)
        self.layers_dock.setWidget(_scrolling(workspace.panel))
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, workspace.toolbar)
        self.menuBar().insertMenu(self.menus["generate"].menuAction(), workspace.menu)
        file_menu = self.menus["file"]
        anchor = self.actions_.add_models
        file_menu.insertAction(anchor, self.importer.import_action)
        file_menu.insertMenu(anchor, self.exports.menu)
        file_menu.insertSeparator(anchor)
        for action in (*workspace.actions(), *self.exports.actions(), self.importer.import_action):
            self.addAction(action)

    def attach_projects(self, projects: ProjectSession) -> None:
        """Place the project controller's File menu entries and follow its resumed work."""
        projects.place_in(self.menus["file"])
        projects.work_resumed.connect(self.panel.set_recipe)
        self.exports.untitled = projects.is_untitled

    def _restore_layout(self) -> None:
        geometry = self.settings.value(GEOMETRY_KEY)
        state = self.settings.value(DOCKS_KEY)
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    # ---- wiring ----------------------------------------------------------------------

    def _connect(self) -> None:
        a, session, view, panel = self.actions_, self.session, self.session.view, self.panel
        a.generate.triggered.connect(self.generate)
        a.cancel.triggered.connect(lambda: session.cancel())
        a.cancel_all.triggered.connect(session.cancel_all)
        a.branch.triggered.connect(lambda: self.branch_from_position(view.position))
        a.leave_branch.triggered.connect(panel.leave_branch_mode)
        va = self.version_actions
        a.rename.triggered.connect(va.rename_current)
        a.delete.triggered.connect(va.delete_selected)
        a.use_settings.triggered.connect(lambda: va.use_settings())
        a.resume.triggered.connect(lambda: va.resume())
        a.compare.triggered.connect(self.versions.compare_button.click)
        a.fit.triggered.connect(lambda: self._on_canvas("fit"))
        a.zoom_in.triggered.connect(lambda: self._on_canvas("zoom_by", 1.25))
        a.zoom_out.triggered.connect(lambda: self._on_canvas("zoom_by", 0.8))
        a.actual_size.triggered.connect(self.canvas.zoom_actual)
        a.static.toggled.connect(view.set_static)
        for canvas in (self.canvas, self.compare.left, self.compare.right):
            a.crisp.toggled.connect(canvas.set_crisp)
        view.static_changed.connect(a.static.setChecked)
        a.add_models.triggered.connect(self.binding.add_model_folder)
        a.quit.triggered.connect(self.close)
        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.versions.view)
        delete.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        delete.activated.connect(va.delete_selected)

        panel.cancel_requested.connect(lambda: session.cancel())

        self.timeline.branch_requested.connect(self.branch_from_position)
        view.version_changed.connect(self.versions.select)
        view.canvas_shown_changed.connect(self._show_page)

        self.versions.version_activated.connect(session.show_version)
        self.versions.rename_requested.connect(session.rename_version)
        self.versions.compare_requested.connect(session.compare)
        self.versions.add_to_canvas_requested.connect(self.workspace.add_version_to_canvas)
        self.queue.cancel_requested.connect(session.cancel)
        session.cancelling.connect(self.queue.mark_cancelling)

        session.message_handled.connect(self._on_message)

    # ---- start-up and models -----------------------------------------------------------

    def start_worker(self) -> None:
        """Start the worker and load the chosen model in the background (a cluster is
        connected to off the UI thread; see :class:`BackendSwitch`)."""
        self.model_label.setText("loading model…")
        self.backend.start()

    # ---- generation --------------------------------------------------------------------

    def generate(self) -> int | None:
        """Send a job from the panel (a branch in branch mode); returns the job id."""
        return self.binding.generate()

    def _on_message(self, message: object) -> None:
        if isinstance(message, QueueChangedMessage):
            self.queue.set_jobs(message.jobs)

    # ---- the view ----------------------------------------------------------------------

    def _show_page(self, canvas_shown: bool) -> None:
        """The canvas came up: keep the user's tab in the right dock, and flash Layers."""
        if canvas_shown:
            self.layers_dock.show()
            flash_tab(self, self.layers_dock.windowTitle())

    def _on_canvas(self, method: str, *args: float) -> None:
        shown = self.workspace if self.session.view.canvas_shown else self.canvas
        getattr(shown, method)(*args)

    def branch_from_position(self, position: int) -> None:
        """Enter branch mode at step ``position`` of the version on view."""
        self.version_actions.branch_from_position(position)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop the worker (a run ends within one step; a model load is waited for, bounded)."""
        self.settings.setValue(GEOMETRY_KEY, self.saveGeometry())
        self.settings.setValue(DOCKS_KEY, self.saveState())
        self.timeline.play_button.setChecked(False)
        if not self.session.shutdown(timeout=QUIT_WAIT_S):
            # It may be in a model load, a decode or a call torch cannot interrupt: say only what is known.
            print(
                f"Noise Studio: the worker was still busy at exit ({QUIT_WAIT_S:g} s after quit);"
                " it ends with the process."
            )
        super().closeEvent(event)


def _scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a scroll area, so its dock can be narrower than its buttons."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    return area


def _batch_size(settings: QSettings) -> int:
    try:
        size = int(settings.value(BATCH_KEY, DEFAULT_BATCH))
    except (TypeError, ValueError):
        size = DEFAULT_BATCH
    return max(1, min(MAX_BATCH, size))


def _default_size() -> QSize:
    """1280×820, shrunk to fit the screen's free area so the status bar is never off-screen."""
    size = QSize(1280, 820)
    screen = QGuiApplication.primaryScreen()
    if screen is not None:
        size = size.boundedTo(screen.availableGeometry().size() * 0.95)
    return size
