"""File > Export: images with their recipe, the layers as OpenRaster/PSD, a trajectory as animation.

Each ``export_*`` method takes the target path (the menu asks for it with a
file dialog first) and returns the written path, or None after telling the
user in one sentence what went wrong. The writing itself is
``studio.document.export`` (atomic: a failed export never damages an
existing file).

Trajectory animations and contact sheets are built from full VAE decodes of each
step (x0-hat, or x_t for the static view), asked of the worker one at a time
(``studio.ui.trajectory_frames``) behind a progress dialog with Cancel. The last
x0 frame is the version's result, so it equals the exported image of the version.
Without a loaded model the stored previews are used, enlarged to the image size.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QEventLoop, QObject, QSettings, QStandardPaths, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QMenu,
    QMessageBox,
    QProgressDialog,
    QSpinBox,
    QWidget,
)

from studio.document import export
from studio.document.versions import Version
from studio.engine.recipe import Recipe
from studio.protocol import StepRecord
from studio.session import Session
from studio.ui.canvas_workspace import CanvasWorkspace, at_recipe_size
from studio.ui.trajectory_frames import TrajectoryFrames, at_size

IMAGE_FILTERS = "PNG image (*.png);;JPEG image (*.jpg *.jpeg);;WebP image (*.webp)"
CONTACT_SHEET_STEPS = 12
EXPORT_SCALES = (1, 2, 4, 8)
FOLDER_KEY = "export/folder"


class ImageSource(enum.Enum):
    """What an image export writes."""

    COMPOSITE = "The canvas (all visible layers)"
    LAYER = "The selected layer"
    VERSION = "The current version (the step shown)"


class ExportActions(QObject):
    """The Export submenu (:attr:`menu`) and the exports behind it.

    The window places :attr:`menu` in its File menu and adds :meth:`actions` to
    itself for their shortcuts. What is exported is read from the session (the
    version on view, its frame and steps) and the workspace (the layers).
    """

    def __init__(
        self,
        session: Session,
        parent: QWidget,
        workspace: CanvasWorkspace,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings or QSettings("Noise Studio", "Noise Studio")
        self.parent_widget = parent
        self.workspace = workspace
        # whether the work is untitled (in the recovery folder): set by the window's wiring
        self.untitled: Callable[[], bool] = lambda: self.session.project is None
        self.menu = QMenu("Export", parent)
        self.image_action = self.menu.addAction("Image…")
        self.image_action.setShortcut(QKeySequence("Ctrl+Shift+E"))
        self.image_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.ora_action = self.menu.addAction("Layers as OpenRaster…")
        self.psd_action: QAction | None = None
        if export.psd_available():
            self.psd_action = self.menu.addAction("Layers as PSD…")
            self.psd_action.triggered.connect(self._ask_psd)
        self.menu.addSeparator()
        self.animation_action = self.menu.addAction("Trajectory as animation…")
        self.sheet_action = self.menu.addAction("Contact sheet…")
        self.image_action.triggered.connect(self._ask_image)
        self.ora_action.triggered.connect(self._ask_ora)
        self.animation_action.triggered.connect(self._ask_animation)
        self.sheet_action.triggered.connect(self._ask_contact_sheet)

    def actions(self) -> list[QAction]:
        """The actions with window-wide shortcuts; the window adds them to itself."""
        return [self.image_action]

    # ---- what there is to export ----------------------------------------------------------

    def _recipe_of(self, version_id: str | None) -> Recipe | None:
        if version_id and version_id in self.session.tree:
            return self.session.tree.get(version_id).recipe
        return None

    def image_for(self, source: ImageSource) -> tuple[np.ndarray, Recipe | None]:
        """The pixels and the recipe (for metadata) of ``source``; ExportError if there is none."""
        layers = self.session.layers
        if source is ImageSource.COMPOSITE:
            if not any(layer.visible for layer in layers):
                raise export.ExportError("The canvas has no visible layers to export.")
            sources = {layer.source_version for layer in layers if layer.visible}
            recipe = self._recipe_of(sources.pop()) if len(sources) == 1 else None
            return layers.composite_rgba(), recipe
        if source is ImageSource.LAYER:
            layer_id = self.workspace.panel.current_layer_id()
            if not layer_id:
                raise export.ExportError("Select a layer to export.")
            layer = layers.layer(layer_id)
            return export.layer_for_export(layer), self._recipe_of(layer.source_version)
        version, frame, at_end = self.session.on_view()
        if version is None:
            raise export.ExportError("There is no version to export.")
        shown = frame.image
        result = self.session.tree.result(version.id)
        if result is not None and (at_end or shown is None):
            pixels = result
        elif shown is not None:
            pixels = shown
        else:
            raise export.ExportError(f"{version.name} has no image yet.")
        return at_recipe_size(pixels, (version.recipe.width, version.recipe.height)), version.recipe

    def _trajectory(self) -> tuple[Version, list[tuple[str, int]]]:
        version, _frame, _at_end = self.session.on_view()
        if version is None:
            raise export.ExportError("Choose a version whose steps to export.")
        refs = list(self.session.tree.trajectory(version.id))
        if not refs:
            raise export.ExportError(f"{version.name} has no steps yet.")
        return version, refs

    def full_frames(
        self, version: Version, refs: list[tuple[str, int]], view: str = "x0"
    ) -> list[tuple[int, np.ndarray]]:
        """(step index, image) for ``refs``: full decodes at the image size, in order.

        Raises ExportError if the user cancels. The last step of the x0 view is the
        version's result image, exactly as an image export writes it.
        """
        if view not in ("x0", "xt"):
            raise export.ExportError(f"Unknown trajectory view {view!r}; use 'x0' or 'xt'.")
        tree = self.session.tree
        size = (version.recipe.width, version.recipe.height)
        steps = [tree.steps.step(*ref) for ref in refs]
        result = tree.result(version.id) if view == "x0" else None
        last_ref = tree.trajectory(version.id)[-1]
        use_result = result is not None and refs[-1] == last_ref
        to_decode = len(steps) - 1 if use_result else len(steps)
        images = self._decode(steps[:to_decode], view, size)
        if use_result:
            images.append(at_recipe_size(result, size))
        return [(step.index, image) for step, image in zip(steps, images, strict=True)]

    def _decode(
        self, steps: list[StepRecord], view: str, size: tuple[int, int]
    ) -> list[np.ndarray]:
        if not steps:
            return []
        if not self.session.model.loaded:
            self.session.status.emit("No model is loaded: the stored previews were used.", 8000)
            return [at_size(getattr(s, f"preview_{view}"), size) for s in steps]
        job = TrajectoryFrames(self.session, steps, view, size)
        progress = QProgressDialog(
            "Decoding each step…", "Cancel", 0, len(steps), self.parent_widget
        )
        progress.setWindowTitle("Export")
        progress.setWindowModality(Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(400)
        loop = QEventLoop()
        job.progress.connect(lambda done, _total: progress.setValue(done))
        progress.canceled.connect(job.cancel)
        job.finished.connect(loop.quit)
        job.start()
        if not job.done:
            loop.exec()
        progress.reset()
        progress.deleteLater()
        if job.cancelled:
            raise export.ExportError("The export was cancelled.")
        if job.failures:
            self.session.status.emit(
                f"{job.failures} step(s) could not be decoded; their previews were used.", 8000
            )
        return [frame for frame in job.frames if frame is not None]

    # ---- exports (paths given) ----------------------------------------------------------------

    def export_image(
        self,
        path: str | Path,
        source: ImageSource = ImageSource.COMPOSITE,
        strip_metadata: bool = False,
        scale: int = 1,
        smooth: bool = False,
    ) -> Path | None:
        """Write ``source`` enlarged ``scale`` times (nearest neighbour, or smooth) with its recipe."""

        def write() -> Path:
            pixels, recipe = self.image_for(source)
            pixels = scaled(pixels, scale, smooth)
            return export.export_image(
                pixels, path, recipe, strip_metadata=strip_metadata, model_hash=_model_hash(recipe)
            )

        return self._run(write)

    def export_ora(self, path: str | Path) -> Path | None:
        return self._run(lambda: export.export_ora(self._layers_or_fail(), path))

    def export_psd(self, path: str | Path) -> Path | None:
        return self._run(lambda: export.export_psd(self._layers_or_fail(), path))

    def export_animation(
        self, path: str | Path, view: str = "x0", frame_ms: int = 100
    ) -> Path | None:
        def write() -> Path:
            version, refs = self._trajectory()
            frames = [image for _index, image in self.full_frames(version, refs, view)]
            return export.export_animation(frames, path, frame_ms=frame_ms)

        return self._run(write)

    def export_contact_sheet(
        self, path: str | Path, count: int = CONTACT_SHEET_STEPS, view: str = "x0"
    ) -> Path | None:
        def write() -> Path:
            version, refs = self._trajectory()
            frames = self.full_frames(version, _evenly(refs, count), view)
            project = self.session.project.name if self.session.project is not None else ""
            title = export.contact_sheet_title(version.recipe, version.name, project)
            return export.export_contact_sheet(
                frames, version.recipe.steps, path, version.recipe, title=title
            )

        return self._run(write)

    def _layers_or_fail(self):
        if len(self.session.layers) == 0:
            raise export.ExportError("The canvas has no layers to export.")
        return self.session.layers

    def _run(self, write) -> Path | None:
        try:
            written = write()
        except export.ExportError as exc:
            self.show_error(str(exc))
            return None
        except OSError as exc:
            self.show_error(f"The file could not be written ({exc.strerror or exc}).")
            return None
        self.session.status.emit(f"Exported {written}.", 8000)
        return written

    def show_error(self, text: str) -> None:
        self.session.status.emit(text, 10000)
        QMessageBox.warning(self.parent_widget, "Export", text)

    # ---- dialogs ------------------------------------------------------------------------------

    def _save_path(self, title: str, filters: str, default: str) -> str | None:
        """Ask where to save, starting in the last export folder with a name from the work."""
        start = str(self.export_folder() / default)
        path, _ = QFileDialog.getSaveFileName(self.parent_widget, title, start, filters)
        if path:
            self.settings.setValue(FOLDER_KEY, str(Path(path).parent))
        return path or None

    def export_folder(self) -> Path:
        """The folder of the last export, else Pictures, else Documents, else home."""
        last = self.settings.value(FOLDER_KEY, "")
        if last and Path(str(last)).is_dir():
            return Path(str(last))
        for kind in (
            QStandardPaths.StandardLocation.PicturesLocation,
            QStandardPaths.StandardLocation.DocumentsLocation,
        ):
            folder = QStandardPaths.writableLocation(kind)
            if folder and Path(folder).is_dir():
                return Path(folder)
        return Path.home()

    def proposed_name(self, what: str, suffix: str) -> str:
        """``myproject-v3-step12.png``: the project, the version and the step on view."""
        project = self.session.project
        parts = ["untitled" if project is None or self.untitled() else _safe(project.name)]
        version, frame, _at_end = self.session.on_view()
        if what in ("image", "trajectory", "steps") and version is not None:
            parts.append(_safe(version.name))
            step = frame.step
            if what == "image" and step is not None and step.index < step.total - 1:
                parts.append(f"step{step.index + 1}")
        if what != "image":
            parts.append(what)
        return "-".join(parts) + suffix

    def _ask_image(self) -> None:
        dialog = QDialog(self.parent_widget)
        dialog.setWindowTitle("Export image")
        source = QComboBox()
        for item in ImageSource:
            source.addItem(item.value, item)
        if len(self.session.layers) == 0:
            source.setCurrentIndex(list(ImageSource).index(ImageSource.VERSION))
        strip = QCheckBox("Without metadata (no prompt or settings in the file)")
        scale = QComboBox()
        for factor in EXPORT_SCALES:
            scale.addItem(f"{factor}×", factor)
        smooth = QComboBox()
        smooth.addItem("Nearest neighbour (crisp pixels)", False)
        smooth.addItem("Smooth", True)
        form = QFormLayout(dialog)
        form.addRow("Export", source)
        form.addRow("Scale", scale)
        form.addRow("Enlarge with", smooth)
        form.addRow(strip)
        if not _run_with_ok_cancel(dialog, form):
            return
        path = self._save_path("Export image", IMAGE_FILTERS, self.proposed_name("image", ".png"))
        if path:
            self.export_image(
                path,
                source.currentData(),
                strip.isChecked(),
                scale.currentData(),
                smooth.currentData(),
            )

    def _ask_ora(self) -> None:
        path = self._save_path(
            "Export layers", "OpenRaster (*.ora)", self.proposed_name("layers", ".ora")
        )
        if path:
            self.export_ora(_with_suffix(path, ".ora"))

    def _ask_psd(self) -> None:
        path = self._save_path(
            "Export layers", "Photoshop (*.psd)", self.proposed_name("layers", ".psd")
        )
        if path:
            self.export_psd(_with_suffix(path, ".psd"))

    def _ask_animation(self) -> None:
        dialog = QDialog(self.parent_widget)
        dialog.setWindowTitle("Export trajectory")
        frame_ms = QSpinBox()
        frame_ms.setRange(10, 5000)
        frame_ms.setValue(100)
        frame_ms.setSuffix(" ms per frame")
        view = QComboBox()
        view.addItem("Predicted image (x0-hat)", "x0")
        view.addItem("Static (x_t)", "xt")
        form = QFormLayout(dialog)
        form.addRow("Frames", frame_ms)
        form.addRow("Show", view)
        if not _run_with_ok_cancel(dialog, form):
            return
        filters = "Animated WebP (*.webp);;GIF (*.gif)"
        if export.mp4_available():
            filters += ";;MP4 video (*.mp4)"
        path = self._save_path(
            "Export trajectory", filters, self.proposed_name("trajectory", ".webp")
        )
        if path:
            self.export_animation(path, view.currentData(), frame_ms.value())

    def _ask_contact_sheet(self) -> None:
        dialog = QDialog(self.parent_widget)
        dialog.setWindowTitle("Export contact sheet")
        count = QSpinBox()
        count.setRange(1, 200)
        count.setValue(CONTACT_SHEET_STEPS)
        count.setSuffix(" steps, spread over the run")
        view = QComboBox()
        view.addItem("Predicted image (x0-hat)", "x0")
        view.addItem("Static (x_t)", "xt")
        form = QFormLayout(dialog)
        form.addRow("Show", count)
        form.addRow("View", view)
        if not _run_with_ok_cancel(dialog, form):
            return
        path = self._save_path(
            "Export contact sheet", "PNG image (*.png)", self.proposed_name("steps", ".png")
        )
        if path:
            self.export_contact_sheet(_with_suffix(path, ".png"), count.value(), view.currentData())


def _run_with_ok_cancel(dialog: QDialog, form: QFormLayout) -> bool:
    """Add OK and Cancel below ``form``, run ``dialog`` modally; True if it was accepted."""
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
    )
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)
    return dialog.exec() == QDialog.DialogCode.Accepted


def _evenly(refs: list[tuple[str, int]], count: int) -> list[tuple[str, int]]:
    """``count`` steps spread over the run, always including the first and the last."""
    if len(refs) <= count:
        return list(refs)
    picks = np.linspace(0, len(refs) - 1, count).round().astype(int)
    return [refs[i] for i in dict.fromkeys(picks.tolist())]


def scaled(pixels: np.ndarray, factor: int, smooth: bool = False) -> np.ndarray:
    """``pixels`` enlarged ``factor`` times: each pixel a square, or smoothly (Lanczos)."""
    if factor <= 1:
        return pixels
    if not smooth:
        return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)
    height, width = pixels.shape[:2]
    image = Image.fromarray(np.ascontiguousarray(pixels))
    size = (width * factor, height * factor)
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS)).copy()


def _safe(name: str) -> str:
    """A file-name part: letters, digits, - and _; other runs become one -."""
    kept = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip())
    return "-".join(part for part in kept.split("-") if part) or "untitled"


def _with_suffix(path: str, suffix: str) -> str:
    return path if path.lower().endswith(suffix) else path + suffix


def _model_hash(recipe: object) -> str | None:
    """The short hash of the recipe's model when the worker has cached it (never reads weights)."""
    from studio.engine.errors import ModelError
    from studio.engine.model_hash import cached_model_hash
    from studio.engine.model_refs import resolve

    try:
        return cached_model_hash(resolve(recipe.model)) if recipe is not None else None
    except (ModelError, OSError, AttributeError):
        return None
