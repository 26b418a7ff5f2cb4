"""Images into the studio: File > Import image as layer…, and files dropped on the window.

Each PNG, JPEG or WebP becomes a layer (one undo step for the whole import).
A file that cannot be imported is explained in one sentence. When a single
imported image carries a recipe (A1111 ``parameters`` or our JSON), the user
is offered to load it into the prompt panel; the metadata is parsed as data by
``studio.document.imageio`` on a parse thread, never on the UI thread, and any
warnings are shown as plain text.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QDragMoveEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from studio.document.imageio import (
    ImageImportError,
    ImageMetadata,
    RecipeFromImage,
    read_layer,
    recipe_from_metadata,
)
from studio.document.layers import Layer
from studio.engine.recipe import Recipe
from studio.engine.schedulers import SAMPLERS
from studio.session import Session
from studio.ui.canvas_workspace import CanvasWorkspace

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp)"
PROMPT_PREVIEW_CHARS = 300


def image_paths(mime: QMimeData) -> list[Path]:
    """The local image files (by suffix) among the dragged URLs."""
    if not mime.hasUrls():
        return []
    paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
    return [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]


class ImageImporter(QObject):
    """The import action, and image files dropped anywhere on ``parent`` (the window).

    The action joins the workspace's Layer menu and toolbar; the window places it
    in its File menu and adds :meth:`actions` to itself for the shortcut. A recipe
    the user chose to load is emitted as ``recipe_offered(Recipe)``; the window
    puts it in the prompt panel.

    Threading: an image's metadata is parsed on a parse thread; the result
    comes back to the UI thread by a queued signal (``recipe_read``) and only
    then is the user asked. A newer import makes the answer of an older one stale,
    and a stale answer is dropped.
    """

    recipe_offered = Signal(object)  # Recipe
    recipe_read = Signal(object)  # RecipeFromImage, on the UI thread, before the user is asked
    _parsed = Signal(int, str, object)  # ticket, file name, RecipeFromImage; from the parse thread

    def __init__(self, session: Session, parent: QWidget, workspace: CanvasWorkspace) -> None:
        super().__init__(parent)
        self.session = session
        self.parent_widget = parent
        self.workspace = workspace
        self.import_action = QAction("Import image as layer…", parent)
        self.import_action.setShortcut(QKeySequence("Ctrl+I"))
        self.import_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.import_action.triggered.connect(lambda: self.import_files())
        workspace.menu.insertAction(
            workspace.menu.actions()[1] if len(workspace.menu.actions()) > 1 else None,
            self.import_action,
        )
        workspace.toolbar.addAction(self.import_action)
        parent.setAcceptDrops(True)
        parent.installEventFilter(self)
        self._parse_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recipe-parse")
        self._tickets = itertools.count(1)
        self._latest_ticket = 0
        self._parsed.connect(self._on_parsed, Qt.ConnectionType.QueuedConnection)
        parse_thread = self._parse_thread
        self.destroyed.connect(lambda: parse_thread.shutdown(wait=False, cancel_futures=True))

    def actions(self) -> list[QAction]:
        """The actions with window-wide shortcuts; the window adds them to itself."""
        return [self.import_action]

    # ---- the questions (tests replace these) -------------------------------------------

    def ask_paths(self) -> list[str]:
        paths, _ = QFileDialog.getOpenFileNames(
            self.parent_widget, "Import images as layers", "", IMAGE_FILTER
        )
        return paths

    def ask_load_recipe(self, name: str, recipe: Recipe, warnings: Sequence[str]) -> bool:
        box = QMessageBox(self.parent_widget)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Load its recipe?")
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(f"{name} carries generation settings. Load its recipe into the prompt panel?")
        prompt = recipe.prompt
        if len(prompt) > PROMPT_PREVIEW_CHARS:
            prompt = prompt[: PROMPT_PREVIEW_CHARS - 1] + "…"
        details = [
            f"Prompt: {prompt}",
            f"Seed {recipe.seed}, {recipe.steps} steps, {recipe.sampler}, "
            f"guidance {recipe.guidance}, {recipe.width}×{recipe.height}",
        ]
        details += list(warnings)
        box.setInformativeText("\n".join(details))
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        return box.exec() == QMessageBox.StandardButton.Yes

    def show_error(self, text: str) -> None:
        self.session.status.emit(text, 10000)
        QMessageBox.warning(self.parent_widget, "Import image", text)

    # ---- importing ----------------------------------------------------------------------

    def import_files(self, paths: Iterable[str | Path] | None = None) -> list[Layer]:
        """Import images as layers on top of the stack; returns the layers added."""
        chosen = list(paths) if paths is not None else self.ask_paths()
        if not chosen:
            return []
        read: list[tuple[Layer, ImageMetadata, str]] = []
        errors: list[str] = []
        for path in chosen:
            try:
                layer, metadata = read_layer(path)
            except ImageImportError as exc:
                errors.append(str(exc))
                continue
            read.append((layer, metadata, Path(path).name))
        undo = self.session.undo_stack
        if len(read) > 1:
            undo.beginMacro(f"Import {len(read)} images")
        for layer, _metadata, _name in read:
            self.workspace.add_layer(layer)
        if len(read) > 1:
            undo.endMacro()
        if read:
            self.workspace.show_canvas(True)
            names = ", ".join(name for *_, name in read)
            self.session.status.emit(f"Imported {names}.", 5000)
        if errors:
            self.show_error(errors[0] if len(errors) == 1 else " ".join(errors))
        if len(read) == 1:
            self.offer_recipe(read[0][1], read[0][2])
        return [layer for layer, *_ in read]

    def offer_recipe(self, metadata: ImageMetadata, name: str) -> Future | None:
        """If ``metadata`` may hold a recipe, parse it off the UI thread, then offer to load it.

        Returns the parse's future (None when there is nothing to parse); the
        answer arrives later on the UI thread, as ``recipe_read`` and, on a yes,
        ``recipe_offered``.
        """
        if metadata.parameters is None and metadata.recipe_json is None:
            return None
        ticket = self._latest_ticket = next(self._tickets)
        future = self._parse_thread.submit(recipe_from_metadata, metadata, SAMPLERS)
        future.add_done_callback(lambda done: self._post_parsed(ticket, name, done))
        return future

    def _post_parsed(self, ticket: int, name: str, done: Future) -> None:
        """On the parse thread: hand the result to the UI thread."""
        if done.cancelled():
            return
        error = done.exception()
        found = (
            RecipeFromImage(None, (f"The recipe of {name} could not be read ({error}).",))
            if error is not None
            else done.result()
        )
        with contextlib.suppress(RuntimeError):  # the importer was deleted while parsing
            self._parsed.emit(ticket, name, found)

    def _on_parsed(self, ticket: int, name: str, found: RecipeFromImage) -> None:
        if ticket != self._latest_ticket:
            return  # a newer import replaced this one
        self.recipe_read.emit(found)
        if found.recipe is None:
            if found.warnings:
                self.session.status.emit(found.warnings[0], 10000)
            return
        if not self.ask_load_recipe(name, found.recipe, found.warnings):
            return
        self.recipe_offered.emit(found.recipe)
        self.session.status.emit(f"Loaded the recipe of {name}.", 5000)

    # ---- drag and drop ------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parent_widget:
            kind = event.type()
            if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
                assert isinstance(event, QDragMoveEvent)  # the base of QDragEnterEvent
                if image_paths(event.mimeData()):
                    event.acceptProposedAction()
                    return True
            elif kind == QEvent.Type.Drop:
                assert isinstance(event, QDropEvent)
                paths = image_paths(event.mimeData())
                if paths:
                    event.acceptProposedAction()
                    # after the drop returns: the drag source must not wait on our dialogs
                    QTimer.singleShot(0, lambda: self.import_files(paths))
                    return True
        return super().eventFilter(watched, event)
