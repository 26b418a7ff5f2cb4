"""The studio window: wires the panels to the version tree, the undo stack and the worker."""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np
from PySide6.QtCore import QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QScrollArea,
    QStackedWidget,
    QToolButton,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

from studio.document.commands import AddVersionCommand, DeleteVersionCommand, RenameVersionCommand
from studio.document.versions import StoredStep, Version, VersionTree
from studio.engine.recipe import BUNDLED_MODEL, RecipeError
from studio.ui.canvas import Canvas
from studio.ui.canvas_workspace import CanvasWorkspace
from studio.ui.compare_view import CompareView
from studio.ui.export_actions import ExportActions
from studio.ui.image_drop import ImageImporter
from studio.ui.prompt_panel import BranchTarget, PromptPanel
from studio.ui.queue_view import QueueView
from studio.ui.timeline import Timeline
from studio.ui.versions_panel import VersionsPanel
from studio.worker import (
    Decoded,
    DecodeFailed,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelFailed,
    ModelList,
    ModelLoaded,
    ModelLoading,
    PromptInfo,
    QueueChanged,
    StepReady,
    Worker,
)

DECODE_CACHE = 48
VALIDATE_MS = 150
TOKENS_MS = 300
MODEL_FOLDERS_KEY = "models/folders"
GEOMETRY_KEY = "window/geometry"
DOCKS_KEY = "window/docks"


class MainWindow(QMainWindow):
    """The studio. Owns the VersionTree, the one QUndoStack and the Worker.

    ``message_handled`` re-emits each worker message on the UI thread after the
    window has acted on it; observers (tests, benchmarks) listen there rather
    than to the worker's cross-thread signal.

    Display rule: the canvas shows the current version at the timeline's
    position. A finished version's last step shows its full decode; any other
    step shows its stored preview at once and a full decode once the timeline
    settles. During a run only the newest preview is drawn (one repaint per
    event-loop pass), while every step is stored in the tree.
    """

    message_handled = Signal(object)

    def __init__(
        self,
        worker: Worker | None = None,
        model_ref: str = BUNDLED_MODEL,
        settings: QSettings | None = None,
        tree: VersionTree | None = None,
        undo_stack: QUndoStack | None = None,
    ) -> None:
        """``tree``/``undo_stack`` let a caller open an existing document (e.g. one loaded
        from a project file); by default the window starts an empty one."""
        super().__init__()
        self.setWindowTitle("Noise Studio")
        self.resize(_default_size())
        self.settings = settings or QSettings("Noise Studio", "Noise Studio")
        self.tree = tree if tree is not None else VersionTree(self)
        self.undo_stack = undo_stack if undo_stack is not None else QUndoStack(self)
        self.worker = worker or Worker(self)
        self.worker.message.connect(self._on_message, Qt.ConnectionType.QueuedConnection)

        self._current_id: str | None = None
        self._trajectory: list[StoredStep] = []
        self._job_versions: dict[int, Version] = {}
        self._job_branch: dict[int, BranchTarget | None] = {}
        self._decoded: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._shown_key: Hashable | None = None
        self._compared: tuple[str, ...] = ()
        self._size_factor = 8
        self._model_loaded = False
        self._loaded_model: tuple[str, str] | None = None  # (ref, description) the worker holds
        self._failed_ids: set[str] = set()
        self._closing = False

        self._build_widgets()
        self._build_actions()
        self._build_menus()
        self._connect()
        # The layered canvas, image import and export live in their own modules.
        self.workspace = CanvasWorkspace(self)
        self.importer = ImageImporter(self, self.workspace)
        self.exports = ExportActions(self, self.workspace)
        self._restore_layout()
        self._model_ref = model_ref
        self.panel.select_model(model_ref)
        versions = self.tree.versions()
        self.show_version(versions[-1].id if versions else None)
        self.panel.prompt.setFocus()

    # ---- construction ----------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.canvas = Canvas()
        self.compare = CompareView()
        self.caption = QLabel("Type a prompt and press Generate (Ctrl+Enter).")
        self.caption.setStyleSheet("padding: 2px 6px;")
        self.fit_button = QToolButton()
        self.fit_button.setText("Fit")
        self.static_button = QToolButton()
        self.static_button.setText("Static (x_t)")
        self.static_button.setCheckable(True)
        self.static_button.setToolTip(
            "Show the noisy latent x_t instead of the predicted image x0-hat"
        )
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.caption, 1)
        header.addWidget(self.static_button)
        header.addWidget(self.fit_button)
        canvas_page = QWidget()
        canvas_layout = QVBoxLayout(canvas_page)
        canvas_layout.setContentsMargins(0, 0, 0, 0)
        canvas_layout.setSpacing(0)
        canvas_layout.addLayout(header)
        canvas_layout.addWidget(self.canvas, 1)
        self.stack = QStackedWidget()
        self.stack.addWidget(canvas_page)
        self.stack.addWidget(self.compare)
        self.timeline = Timeline()
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.stack, 1)
        central_layout.addWidget(self.timeline)
        self.setCentralWidget(central)

        self.panel = PromptPanel()
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(300)
        self.prompt_dock = self._dock("Prompt", scroll, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.versions = VersionsPanel(self.tree)
        self.versions_dock = self._dock(
            "Versions", self.versions, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.layers_placeholder = QLabel("Layers will appear here.")
        self.layers_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.layers_dock = self._dock(
            "Layers", self.layers_placeholder, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.tabifyDockWidget(self.versions_dock, self.layers_dock)
        self.versions_dock.raise_()
        self.history = QUndoView(self.undo_stack)
        self.history.setEmptyLabel("<start>")
        self.history_dock = self._dock(
            "History", self.history, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.queue = QueueView()
        self.queue_dock = self._dock("Queue", self.queue, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.history_dock, self.queue_dock)
        self.history_dock.raise_()
        self.resizeDocks(
            [self.versions_dock, self.history_dock], [480, 220], Qt.Orientation.Vertical
        )

        self.model_label = QLabel("loading model…")
        self.queue_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v / %m")
        self.progress.hide()
        self.speed_label = QLabel("")
        bar = self.statusBar()
        bar.addPermanentWidget(self.speed_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.queue_label)
        bar.addPermanentWidget(self.model_label)

        self._validate_timer = QTimer(self, singleShot=True, interval=VALIDATE_MS)
        self._tokens_timer = QTimer(self, singleShot=True, interval=TOKENS_MS)
        self._display_timer = QTimer(self, singleShot=True, interval=0)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower() + "_dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _restore_layout(self) -> None:
        geometry = self.settings.value(GEOMETRY_KEY)
        state = self.settings.value(DOCKS_KEY)
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def set_layers_panel(self, widget: QWidget) -> None:
        """Put the layers panel (owned by the layers feature) into its reserved dock."""
        self.layers_dock.setWidget(widget)

    def _build_actions(self) -> None:
        self.generate_action = QAction("Generate", self)
        self.generate_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.generate_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.cancel_action = QAction("Cancel", self)
        self.cancel_action.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.cancel_all_action = QAction("Cancel all jobs", self)
        self.branch_action = QAction("Branch from this step", self)
        self.branch_action.setShortcut(QKeySequence("Ctrl+B"))
        self.leave_branch_action = QAction("Leave branch mode", self)
        self.undo_action = self.undo_stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.undo_stack.createRedoAction(self, "Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.rename_action = QAction("Rename version", self)
        self.rename_action.setShortcut(QKeySequence(Qt.Key.Key_F2))
        self.delete_action = QAction("Delete version", self)
        self.compare_action = QAction("Compare selected versions", self)
        self.fit_action = QAction("Fit to window", self)
        self.fit_action.setShortcut(QKeySequence("Ctrl+0"))
        self.zoom_in_action = QAction("Zoom in", self)
        self.zoom_in_action.setShortcuts([QKeySequence("Ctrl++"), QKeySequence("Ctrl+=")])
        self.zoom_out_action = QAction("Zoom out", self)
        self.zoom_out_action.setShortcut(QKeySequence("Ctrl+-"))
        self.actual_size_action = QAction("Actual pixels", self)
        self.actual_size_action.setShortcut(QKeySequence("Ctrl+1"))
        self.static_action = QAction("Show static (x_t)", self, checkable=True)
        self.static_action.setShortcut(QKeySequence("Ctrl+T"))
        self.add_models_action = QAction("Add model folder…", self)
        self.quit_action = QAction("Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        for action in (
            self.generate_action,
            self.cancel_action,
            self.branch_action,
            self.undo_action,
            self.redo_action,
            self.fit_action,
            self.zoom_in_action,
            self.zoom_out_action,
            self.actual_size_action,
            self.static_action,
            self.quit_action,
        ):
            self.addAction(action)
        # Arrow keys scrub while the canvas or the timeline has focus (not while typing a prompt).
        for key, move in (
            (Qt.Key.Key_Left, lambda: self._step_by(-1)),
            (Qt.Key.Key_Right, lambda: self._step_by(1)),
            (Qt.Key.Key_Home, lambda: self.timeline.set_position(0)),
            (Qt.Key.Key_End, lambda: self.timeline.set_position(self.timeline.count() - 1)),
        ):
            shortcut = QShortcut(QKeySequence(key), self.centralWidget())
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(move)
        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.versions.view)
        delete.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        delete.activated.connect(self._delete_selected)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.add_models_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit = self.menuBar().addMenu("&Edit")
        edit.addAction(self.undo_action)
        edit.addAction(self.redo_action)
        edit.addSeparator()
        edit.addAction(self.rename_action)
        edit.addAction(self.delete_action)
        view = self.menuBar().addMenu("&View")
        for action in (
            self.fit_action,
            self.zoom_in_action,
            self.zoom_out_action,
            self.actual_size_action,
        ):
            view.addAction(action)
        view.addSeparator()
        view.addAction(self.static_action)
        view.addAction(self.compare_action)
        view.addSeparator()
        for dock in (
            self.prompt_dock,
            self.versions_dock,
            self.layers_dock,
            self.history_dock,
            self.queue_dock,
        ):
            view.addAction(dock.toggleViewAction())
        generate = self.menuBar().addMenu("&Generate")
        for action in (self.generate_action, self.cancel_action, self.cancel_all_action):
            generate.addAction(action)
        generate.addSeparator()
        generate.addAction(self.branch_action)
        generate.addAction(self.leave_branch_action)

    def _connect(self) -> None:
        self.generate_action.triggered.connect(self.generate)
        self.cancel_action.triggered.connect(self.cancel)
        self.cancel_all_action.triggered.connect(self.worker.cancel_all)
        self.branch_action.triggered.connect(
            lambda: self.branch_from_position(self.timeline.position())
        )
        self.leave_branch_action.triggered.connect(self.panel.leave_branch_mode)
        self.rename_action.triggered.connect(self._rename_current)
        self.delete_action.triggered.connect(self._delete_selected)
        self.compare_action.triggered.connect(self.versions.compare_button.click)
        self.fit_action.triggered.connect(self.canvas.fit)
        self.fit_button.clicked.connect(self.canvas.fit)
        self.zoom_in_action.triggered.connect(lambda: self.canvas.zoom_by(1.25))
        self.zoom_out_action.triggered.connect(lambda: self.canvas.zoom_by(0.8))
        self.actual_size_action.triggered.connect(self.canvas.zoom_actual)
        self.static_action.toggled.connect(self.static_button.setChecked)
        self.static_button.toggled.connect(self.static_action.setChecked)
        self.static_action.toggled.connect(self._on_static_toggled)
        self.add_models_action.triggered.connect(self._add_model_folder)
        self.quit_action.triggered.connect(self.close)

        self.panel.generate_requested.connect(self.generate)
        self.panel.cancel_requested.connect(self.cancel)
        self.panel.recipe_edited.connect(self._validate_timer.start)
        self.panel.recipe_edited.connect(self._tokens_timer.start)
        self.panel.model_changed.connect(self._on_model_picked)
        self.panel.add_model_folder_requested.connect(self._add_model_folder)
        self._validate_timer.timeout.connect(self._validate)
        self._tokens_timer.timeout.connect(self._request_tokens)
        self._display_timer.timeout.connect(lambda: self._show_position(self.timeline.position()))

        self.timeline.position_changed.connect(self._show_position)
        self.timeline.position_settled.connect(self._request_full_decode)
        self.timeline.branch_requested.connect(self.branch_from_position)

        self.versions.version_activated.connect(self.show_version)
        self.versions.branch_requested.connect(self._branch_from_version)
        self.versions.rename_requested.connect(self.rename_version)
        self.versions.delete_requested.connect(self.delete_version)
        self.versions.compare_requested.connect(self.compare_versions)
        self.compare.closed.connect(self._close_compare)

        self.tree.version_removed.connect(self._on_version_removed)
        self.tree.version_added.connect(self._on_version_added)
        self.tree.version_renamed.connect(
            lambda vid, _n: vid == self._current_id and self._update_caption()
        )

    # ---- start-up ----------------------------------------------------------------------

    def start_worker(self) -> None:
        """Start the worker thread and load the chosen model in the background."""
        self.worker.start()
        self.model_label.setText("loading model…")
        self.worker.load_model(self._model_ref)
        self.worker.request_model_list(self._model_folders())

    def _model_folders(self) -> tuple[str, ...]:
        value = self.settings.value(MODEL_FOLDERS_KEY, [])
        if isinstance(value, str):
            value = [value]
        return tuple(str(v) for v in value or [])

    def _add_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of models")
        if not folder:
            return
        folders = [*self._model_folders(), folder]
        self.settings.setValue(MODEL_FOLDERS_KEY, list(dict.fromkeys(folders)))
        self.worker.request_model_list(self._model_folders())

    def _on_model_picked(self, ref: str) -> None:
        if ref != self._model_ref:
            self._model_ref = ref
            self.worker.load_model(ref)

    # ---- generation ---------------------------------------------------------------------

    def generate(self) -> int | None:
        """Queue a generation from the panel (a branch in branch mode); returns the job id."""
        if self.panel.branch_target() is None:
            self.panel.prepare_for_generation()
        try:
            recipe = self.panel.recipe()
            self._validate_recipe(recipe)
        except RecipeError as exc:
            self.panel.show_error(str(exc))
            return None
        self.panel.show_error(None)
        target = self.panel.branch_target()
        start = None
        if target is not None:
            if target.version_id not in self.tree:
                self.panel.leave_branch_mode()
                self.panel.show_error(
                    "The version to branch from was deleted; generating from noise."
                )
                target = None
            else:
                start = self._stored_step(target.version_id, target.step_index).checkpoint
        job_id = self.worker.submit(recipe, start=start)
        self._job_branch[job_id] = target
        return job_id

    def cancel(self) -> None:
        self.worker.cancel()

    def _validate_recipe(self, recipe) -> None:
        # Recipe.validate imports the scheduler table (diffusers); only call it once the
        # worker has imported that, so the UI thread never pays for the import. The worker
        # validates every job anyway.
        if "studio.engine.schedulers" in sys.modules:
            recipe.validate(self._size_factor)

    def _validate(self) -> None:
        try:
            self._validate_recipe(self.panel.recipe())
        except RecipeError as exc:
            self.panel.show_error(str(exc))
        else:
            self.panel.show_error(None)

    def _request_tokens(self) -> None:
        if self._model_loaded:
            self.worker.request_prompt_info(
                self.panel.prompt.toPlainText(), self.panel.negative.toPlainText()
            )

    # ---- worker messages ------------------------------------------------------------------

    def _on_message(self, message: object) -> None:
        """The one switch over the worker's typed messages."""
        if self._closing:
            return
        match message:
            case StepReady():
                self._on_step(message)
            case JobStarted():
                self._on_started(message)
            case JobFinished():
                self._on_finished(message)
            case JobCancelled():
                self._end_job(message.job_id, f"Cancelled after {message.steps_done} steps.")
            case JobFailed():
                self.panel.show_error(message.error)
                failed = self._job_versions.get(message.job_id)
                if failed is not None:
                    self._failed_ids.add(failed.id)
                self._end_job(message.job_id, f"Failed: {message.error}")
            case Decoded():
                self._on_decoded(message)
            case DecodeFailed():
                self.statusBar().showMessage(f"Full decode failed: {message.error}", 5000)
            case QueueChanged():
                self.queue.set_jobs(message.jobs)
                waiting = sum(1 for job in message.jobs if not job.running)
                self.queue_label.setText(f"queue: {waiting} waiting" if waiting else "")
            case ModelLoading():
                self._model_loaded = False
                self.model_label.setText("loading model…")
            case ModelLoaded():
                self._model_loaded = True
                self._loaded_model = (message.ref, message.description)
                self._size_factor = message.size_factor
                self.panel.set_size_factor(message.size_factor)
                self.model_label.setText(f"{message.description} · {_short_ref(message.ref)}")
                self._request_tokens()
                self._validate()
            case ModelFailed():
                self.statusBar().showMessage(message.error, 10000)
                self._on_model_failed()
                self.panel.show_error(message.error)
            case PromptInfo():
                self.panel.set_token_info(
                    message.text, message.used, message.limit, message.dropped
                )
            case ModelList():
                self.panel.set_models(list(message.models))
        self.message_handled.emit(message)

    def _on_model_failed(self) -> None:
        """The worker keeps the model it had: pick that one again, so the next Generate uses it."""
        if self._loaded_model is None:
            self._model_loaded = False
            self.model_label.setText("model failed to load")
            return
        ref, description = self._loaded_model
        self._model_loaded = True
        self._model_ref = ref  # first, so re-selecting it in the picker does not reload it
        self.panel.select_model(ref)
        self._validate_timer.stop()  # a valid recipe would clear the error about to be shown
        self.model_label.setText(f"{description} · {_short_ref(ref)}")

    def _on_started(self, message: JobStarted) -> None:
        target = self._job_branch.get(message.job_id)
        parent_id = branch_step = None
        if target is not None and target.version_id in self.tree:
            parent_id, branch_step = target.version_id, target.step_index
        version = self.tree.new_version(message.recipe, parent_id, branch_step)
        self._job_versions[message.job_id] = version
        self.tree.add(version)
        self.progress.setRange(0, message.total_steps)
        self.progress.setValue(message.first_step)
        self.progress.show()
        self.speed_label.setText("")
        self.statusBar().showMessage(f"Generating {version.name}…")
        self.show_version(version.id)

    def _on_step(self, message: StepReady) -> None:
        version = self._job_versions.get(message.job_id)
        if version is None:
            return
        if version.id not in self.tree:  # deleted (or undone) while generating
            self.worker.cancel(message.job_id)
            return
        step = StoredStep(
            index=message.index,
            total=message.total,
            timestep=message.timestep,
            sigma=message.sigma,
            checkpoint=message.checkpoint,
            preview_x0=message.preview_x0,
            preview_xt=message.preview_xt,
        )
        self.tree.append_step(version.id, step)
        if version.id == self._current_id:
            self._trajectory.append(step)
            self.timeline.append_step(step.index, self._thumb(step))
            if self.timeline.position() == self.timeline.count() - 1:
                self._display_timer.start()  # coalesced: one repaint for a burst of steps
        self.progress.setValue(message.index + 1)
        rate = message.steps_done / message.elapsed if message.elapsed > 0 else 0.0
        remaining = message.total - message.index - 1
        eta = remaining / rate if rate > 0 else 0.0
        eta_text = f"{eta:.1f}" if eta < 10 else f"{eta:.0f}"
        self.speed_label.setText(f"{rate:.1f} it/s · ETA {eta_text} s")

    def _on_finished(self, message: JobFinished) -> None:
        version = self._job_versions.pop(message.job_id, None)
        self._job_branch.pop(message.job_id, None)
        self.progress.hide()
        self.speed_label.setText("")
        if version is None:
            return
        if version.id in self.tree:
            self.tree.finish(version.id, message.image, partial=False)
            self.undo_stack.push(AddVersionCommand(self.tree, version))
        else:
            version.result, version.finished = message.image, True
        rate = len(version.steps) / message.elapsed if message.elapsed > 0 else 0.0
        self.statusBar().showMessage(
            f"{version.name} done in {message.elapsed:.1f} s ({rate:.1f} it/s).", 8000
        )
        if version.id == self._current_id and self.timeline.position() == self.timeline.count() - 1:
            self._display_timer.stop()
            self._show_position(self.timeline.position())

    def _end_job(self, job_id: int, status: str) -> None:
        """A job stopped early: keep its steps as a partial version, or drop an empty one."""
        version = self._job_versions.pop(job_id, None)
        self._job_branch.pop(job_id, None)
        self.statusBar().showMessage(status, 8000)
        if not self._job_versions:
            self.progress.hide()
            self.speed_label.setText("")
        if version is None:
            return
        if version.id not in self.tree:
            version.finished, version.partial = True, True
            return
        if version.steps:
            self.tree.finish(version.id, None, partial=True)
            self.undo_stack.push(AddVersionCommand(self.tree, version))
            if version.id == self._current_id:
                self._display_timer.stop()  # draw the last step now rather than on the next pass
                self._show_position(self.timeline.position())
        else:
            self.tree.remove(version.id)

    def _on_decoded(self, message: Decoded) -> None:
        self._decoded[message.key] = message.image
        while len(self._decoded) > DECODE_CACHE:
            self._decoded.popitem(last=False)
        if message.key == self._shown_key:
            self._show_position(self.timeline.position())

    # ---- showing versions and steps --------------------------------------------------------

    def current_version(self) -> Version | None:
        return self.tree.get(self._current_id) if self._current_id in self.tree else None

    def show_version(self, version_id: str | None) -> None:
        self._close_compare()
        self._show_version(version_id)
        self.versions.select(version_id)

    def _show_version(self, version_id: str | None) -> None:
        self._current_id = version_id if version_id in self.tree else None
        version = self.current_version()
        if version is None:
            self._trajectory = []
            self.timeline.clear()
            self.canvas.show_image(None)
            self._shown_key = None
            self._update_caption()
            return
        self._trajectory = self.tree.trajectory(version.id)
        numbers = [s.index for s in self._trajectory]
        self.timeline.set_steps(
            numbers, version.recipe.steps, [self._thumb(s) for s in self._trajectory]
        )
        self._show_position(self.timeline.position())

    def _show_position(self, position: int) -> None:
        """Put step ``position`` of the current trajectory on the canvas, from memory only."""
        version = self.current_version()
        if version is None or not 0 <= position < len(self._trajectory):
            self._update_caption()
            return
        step = self._trajectory[position]
        key = self._decode_key(step)
        size = (version.recipe.width, version.recipe.height)
        is_last = position == len(self._trajectory) - 1
        if not self._static and is_last and version.result is not None:
            image, quality = version.result, "full decode"
        elif key in self._decoded:
            image, quality = self._decoded[key], "full decode"
        else:
            image = step.preview_xt if self._static else step.preview_x0
            quality = "preview"
        self._shown_key = key
        self.canvas.show_image(image, size)
        self._update_caption(step, quality)

    def _request_full_decode(self, position: int) -> None:
        if not 0 <= position < len(self._trajectory) or not self._model_loaded:
            return
        step = self._trajectory[position]
        key = self._decode_key(step)
        version = self.current_version()
        is_final = (
            version is not None
            and position == len(self._trajectory) - 1
            and version.result is not None
        )
        if key in self._decoded or (is_final and not self._static):
            return
        self.worker.request_decode(key, step.checkpoint, "xt" if self._static else "x0", step.sigma)

    def _decode_key(self, step: StoredStep) -> Hashable:
        owner = self.tree.step_owner(self._current_id, step.index) if self._current_id else None
        return (owner.id if owner else None, step.index, "xt" if self._static else "x0")

    def _update_caption(self, step: StoredStep | None = None, quality: str = "") -> None:
        version = self.current_version()
        if version is None:
            self.caption.setText("Type a prompt and press Generate (Ctrl+Enter).")
            return
        if step is None and self._trajectory:
            step = self._trajectory[min(self.timeline.position(), len(self._trajectory) - 1)]
        parts = [version.name]
        if step is not None:
            parts.append(f"step {step.index + 1} / {step.total}")
            parts.append("static x_t" if self._static else "x0-hat")
            if quality:
                parts.append(quality)
        if not version.finished:
            parts.append("generating…")
        elif version.partial:
            parts.append(
                "partial (failed)" if version.id in self._failed_ids else "partial (cancelled)"
            )
        self.caption.setText(" · ".join(parts))

    @property
    def _static(self) -> bool:
        return self.static_action.isChecked()

    def _thumb(self, step: StoredStep) -> np.ndarray:
        return step.preview_xt if self._static else step.preview_x0

    def _on_static_toggled(self, _on: bool) -> None:
        self.timeline.replace_thumbnails([self._thumb(s) for s in self._trajectory])
        self._show_position(self.timeline.position())
        self._request_full_decode(self.timeline.position())

    def _step_by(self, delta: int) -> None:
        self.timeline.set_position(
            max(0, min(self.timeline.count() - 1, self.timeline.position() + delta))
        )

    def _on_version_added(self, version_id: str) -> None:
        if self._current_id is None:
            self.show_version(version_id)

    def _on_version_removed(self, version_id: str) -> None:
        if version_id in self._compared:
            self._close_compare()
        if version_id == self._current_id:
            remaining = self.tree.versions()
            self.show_version(remaining[-1].id if remaining else None)
        target = self.panel.branch_target()
        if target is not None and target.version_id == version_id:
            self.panel.leave_branch_mode()

    # ---- branching, editing, comparing ----------------------------------------------------------

    def _stored_step(self, version_id: str, step_index: int) -> StoredStep:
        for step in self.tree.trajectory(version_id):
            if step.index == step_index:
                return step
        raise KeyError(f"Version {version_id} has no step {step_index}.")

    def branch_from_position(self, position: int) -> None:
        """Enter branch mode at step ``position`` of the version on the canvas."""
        version = self.current_version()
        if version is None or not 0 <= position < len(self._trajectory):
            return
        step = self._trajectory[position]
        owner = self.tree.step_owner(version.id, step.index)
        target = BranchTarget(owner.id, step.index)
        description = f"Branching from step {step.index + 1} / {step.total} of {owner.name}."
        self.panel.enter_branch_mode(target, version.recipe, description)
        self.prompt_dock.show()
        self.panel.prompt.setFocus()

    def _branch_from_version(self, version_id: str) -> None:
        if version_id != self._current_id:
            self.show_version(version_id)
        self.branch_from_position(self.timeline.position())

    def rename_version(self, version_id: str, name: str) -> None:
        if version_id in self.tree and name and name != self.tree.get(version_id).name:
            self.undo_stack.push(RenameVersionCommand(self.tree, version_id, name))

    def delete_version(self, version_id: str) -> None:
        if version_id not in self.tree:
            return
        doomed = {version_id, *(v.id for v in self.tree.descendants(version_id))}
        for job_id, version in list(self._job_versions.items()):
            if version.id in doomed:
                self.worker.cancel(job_id)
        self.undo_stack.push(DeleteVersionCommand(self.tree, version_id))

    def _delete_selected(self) -> None:
        ids = self.versions.selected_ids() or ([self._current_id] if self._current_id else [])
        for version_id in ids:
            self.delete_version(version_id)

    def _rename_current(self) -> None:
        item = self.versions.item(self._current_id) if self._current_id else None
        if item is not None:
            self.versions_dock.show()
            self.versions.view.editItem(item, 0)

    def compare_versions(self, first_id: str, second_id: str) -> None:
        a, b = self.tree.get(first_id), self.tree.get(second_id)
        self.compare.set_pair(
            a.name,
            _best_image(a),
            b.name,
            _best_image(b),
            (a.recipe.width, a.recipe.height),
            (b.recipe.width, b.recipe.height),
        )
        self._compared = (first_id, second_id)
        self.stack.setCurrentIndex(1)

    def _close_compare(self) -> None:
        self._compared = ()
        self.stack.setCurrentIndex(0)

    # ---- closing ------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop the worker (cancelling any run within one step) and wait for its thread."""
        self._closing = True
        self.settings.setValue(GEOMETRY_KEY, self.saveGeometry())
        self.settings.setValue(DOCKS_KEY, self.saveState())
        self._display_timer.stop()
        self.timeline.play_button.setChecked(False)
        # A run stops within one step; a model still loading cannot be interrupted, so the
        # wait is bounded and the (daemon) thread is left to end with the process.
        if not self.worker.stop(timeout=10.0):
            print(
                "Noise Studio: the worker was still busy at exit (loading a model).",
                file=sys.stderr,
            )
        super().closeEvent(event)


def _best_image(version: Version) -> np.ndarray | None:
    if version.result is not None:
        return version.result
    return version.steps[-1].preview_x0 if version.steps else None


def _short_ref(ref: str) -> str:
    if ref == BUNDLED_MODEL:
        return "noise-world"
    return ref.rstrip("/").rsplit("/", 1)[-1]


def _default_size() -> QSize:
    """1280×820, shrunk to fit the screen's free area so the status bar is never off-screen."""
    size = QSize(1280, 820)
    screen = QGuiApplication.primaryScreen()
    if screen is not None:
        size = size.boundedTo(screen.availableGeometry().size() * 0.95)
    return size
