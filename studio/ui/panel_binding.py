"""The prompt panel bound to the session: generating, validating, token counts, and models.

Picking a model loads it in the worker; a single ``.safetensors`` file is paired with a
config folder (remembered per file, recognised among the model folders, or asked for
once). Looking for it reads folders that may be big or on a slow network drive, so it
runs on a pairing thread and its answer comes back queued; a newer pick drops an older
answer. Accepting an imported recipe never loads the model it names. Validation and
token counts are debounced while the user types.
"""

from __future__ import annotations

import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget, QFileDialog, QWidget

from studio.engine import model_refs
from studio.engine.recipe import Recipe, RecipeError
from studio.protocol import ModelFailed, ModelList, ModelLoaded, PromptInfo
from studio.session import Session
from studio.ui.prompt_panel import PromptPanel

VALIDATE_MS = 150
TOKENS_MS = 300
MODEL_FOLDERS_KEY = "models/folders"
MODEL_CONFIGS_KEY = "models/configs"


class PanelBinding(QObject):
    """Sends the panel's intent to the session and shows the session's answers in it."""

    _paired = Signal(int, str, object)  # ticket, single file, config folder | None; from the thread

    def __init__(
        self,
        session: Session,
        panel: PromptPanel,
        prompt_dock: QDockWidget,
        settings: QSettings,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.session, self.panel, self.settings = session, panel, settings
        self.prompt_dock, self._parent = prompt_dock, parent
        # The first model's native size, and a picked model's, unless a size is set meanwhile.
        self._offer_native_size = True
        self._validate_timer = QTimer(self, singleShot=True, interval=VALIDATE_MS)
        self._tokens_timer = QTimer(self, singleShot=True, interval=TOKENS_MS)
        self._pairing_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-pairing")
        self._pairing_tickets = itertools.count(1)
        self._pairing: tuple[int, str] | None = None  # the pick waiting for its config folder
        self._paired.connect(self._on_paired, Qt.ConnectionType.QueuedConnection)
        pairing_thread = self._pairing_thread
        self.destroyed.connect(lambda: pairing_thread.shutdown(wait=False, cancel_futures=True))
        panel.generate_requested.connect(self.generate)
        panel.recipe_edited.connect(self._validate_timer.start)
        panel.recipe_edited.connect(self._tokens_timer.start)
        panel.model_changed.connect(self._choose_model)
        panel.model.activated.connect(self._offer_native_size_next)
        for box in (panel.width_box, panel.height_box):
            box.valueChanged.connect(self._keep_size)
        panel.recipe_set.connect(self._keep_size)
        panel.add_model_folder_requested.connect(self.add_model_folder)
        self._validate_timer.timeout.connect(self._validate)
        self._tokens_timer.timeout.connect(self._request_tokens)
        session.message_handled.connect(self._on_message)
        session.error.connect(panel.show_error)

    def model_folders(self) -> tuple[str, ...]:
        value = self.settings.value(MODEL_FOLDERS_KEY, [])
        return tuple(str(v) for v in ([value] if isinstance(value, str) else value or []))

    def add_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._parent, "Add a folder of models")
        if folder:
            folders = list(dict.fromkeys([*self.model_folders(), folder]))
            self.settings.setValue(MODEL_FOLDERS_KEY, folders)
            self.session.list_models(tuple(folders))

    def _choose_model(self, ref: str) -> None:
        """Load the picked model; a single file once its config folder is found (remembered,
        recognised among the model folders, or asked for once): see :meth:`_on_paired`."""
        if self._pairing is not None and self._pairing[1] == ref:
            return  # picked again (the list of models was refreshed): its answer is coming
        self._pairing = None  # an older pick's answer is dropped
        if not ref.lower().endswith(".safetensors"):
            self.session.load_model(ref)
            return
        if ref == self.session.model.ref and self.session.model.config:
            return  # the model now, with its folder
        remembered = self._remembered_pairs().get(ref)
        remembered = remembered if isinstance(remembered, str) else None
        folders = [Path(f) for f in self.model_folders()]
        self._pairing = (next(self._pairing_tickets), ref)
        self.panel.show_model_note(f"Looking for the config folder of {Path(ref).name}…")
        self._pairing_thread.submit(self._find_config, *self._pairing, remembered, folders)

    def _find_config(
        self, ticket: int, ref: str, remembered: str | None, folders: list[Path]
    ) -> None:
        """On the pairing thread: the remembered folder if it is still there, else the first
        that fits among the model folders; always answers, None when none is found."""
        config: str | None = None
        try:
            if remembered is not None and Path(remembered).is_dir():
                config = remembered
            else:
                found = model_refs.find_config_folder(Path(ref), folders)
                config = str(found) if found is not None else None
        except Exception:  # an unreadable folder: the user is asked instead
            config = None
        with contextlib.suppress(RuntimeError):  # the window closed meanwhile
            self._paired.emit(ticket, ref, config)

    def _on_paired(self, ticket: int, ref: str, config: str | None) -> None:
        if self._pairing != (ticket, ref):
            return  # the user picked another model meanwhile
        self._pairing = None
        self.panel.show_model_note(None)
        if config is None:
            config = self._ask_config(ref)
        if config is None:
            self.panel.select_model(self.session.model.ref)
            self.panel.show_error(
                f"{Path(ref).name} is a single-file model and needs a config folder "
                "(a diffusers folder of the same family) to load."
            )
            return
        pairs = self._remembered_pairs()
        pairs[ref] = config
        self.settings.setValue(MODEL_CONFIGS_KEY, pairs)
        self.session.load_model(ref, config)

    def _remembered_pairs(self) -> dict[str, object]:
        pairs = self.settings.value(MODEL_CONFIGS_KEY, {}) or {}
        return dict(pairs) if isinstance(pairs, dict) else {}

    def _ask_config(self, ref: str) -> str | None:
        """The config folder the user chooses for ``ref``, checked; None if none fits."""
        from studio.engine.errors import ModelError
        from studio.engine.model_files import check_config_folder, check_single_file

        config = QFileDialog.getExistingDirectory(
            self._parent, f"Choose the config folder for {Path(ref).name} (a diffusers folder)"
        )
        if not config:
            return None
        try:
            check_config_folder(config)
            check_single_file(ref, config)
        except ModelError as exc:
            self.panel.show_error(str(exc))
            return None
        return config

    def _offer_native_size_next(self, _index: int) -> None:
        self._offer_native_size = True  # the user picked a model: its native size follows

    def _keep_size(self, *_args: object) -> None:
        self._offer_native_size = False  # a size the user or a recipe set wins

    def _on_message(self, message: object) -> None:
        """What the panel shows of the worker's messages; the session already acted on them."""
        match message:
            case ModelLoaded():
                if self._offer_native_size and message.native_size > 0:
                    self._offer_native_size = False
                    self.panel.width_box.setValue(message.native_size)
                    self.panel.height_box.setValue(message.native_size)
                self.panel.set_size_factor(message.size_factor, self.session.model.budget)
                self.panel.show_preview_in_use(message.preview)
                self._request_tokens()
                self._validate()
            case ModelFailed() if self.session.model.held is not None:
                self.panel.select_model(self.session.model.ref)  # the one the worker holds
                self._validate_timer.stop()  # a valid recipe would clear the error just shown
            case PromptInfo():
                self.panel.set_token_info(
                    message.text, message.used, message.limit, message.dropped, message.unknown
                )
            case ModelList():
                self.panel.set_models(list(message.models))

    def generate(self) -> int | None:
        """Send a job from the panel (a branch in branch mode); returns the job id."""
        panel = self.panel
        if panel.branch_target() is None:
            panel.prepare_for_generation()
        recipe = self.checked_recipe()
        if recipe is None:
            return None
        target = panel.branch_target()
        if target is not None and target.version_id not in self.session.tree:
            panel.leave_branch_mode()
            panel.show_error("The version to branch from was deleted; generating from noise.")
            target = None
        return self.session.generate(recipe, target)

    def checked_recipe(self) -> Recipe | None:
        """The panel's recipe, valid for the model (the error shown when it is not)."""
        panel = self.panel
        try:
            recipe = panel.recipe()
            recipe.validate(self.session.model.size_factor)
        except RecipeError as exc:
            panel.show_error(str(exc))
            return None
        if self._pairing is not None and recipe.model == self._pairing[1]:
            panel.show_error(
                f"Still looking for the config folder of {Path(recipe.model).name}; "
                "generate once it has loaded."
            )
            return None
        if recipe.model == self.session.model.ref:  # a single file records its config folder
            recipe = recipe.with_changes(model_config=self.session.model.config)
        panel.show_error(None)
        return recipe

    def _validate(self) -> None:
        try:
            self.panel.recipe().validate(self.session.model.size_factor)
        except RecipeError as exc:
            self.panel.show_error(str(exc))
        else:
            self.panel.show_error(None)

    def _request_tokens(self) -> None:
        self.session.request_tokens(
            self.panel.prompt.toPlainText(), self.panel.negative.toPlainText()
        )

    def offer_recipe(self, recipe) -> None:
        self.panel.set_imported_recipe(recipe)  # never loads the model it names
        self.prompt_dock.show()
