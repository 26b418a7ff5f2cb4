"""The window's layered canvas: the layer stack, its panel, the Canvas view and "Add to canvas".

The studio window shows either the version on the timeline (the version view)
or the composite of the layer stack (the Canvas view). "Add to canvas" turns
what the version view shows into a layer that links back to its version:
the full result at a finished version's last step, otherwise the step on
screen, stretched to the recipe's size as the version view draws it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu, QToolBar, QVBoxLayout, QWidget

from studio.document.layer_commands import AddLayerCommand
from studio.document.layers import Layer, LayerStack
from studio.ui.layer_canvas import LayerCanvas
from studio.ui.layers_panel import LayersPanel


class CanvasWorkspace(QObject):
    """Docks the layers panel, adds the Canvas view to the window and the Layer menu.

    ``window`` is the :class:`~studio.ui.main_window.MainWindow` (its tree,
    undo stack, central stack of pages, timeline and version canvas).
    """

    def __init__(self, window, layers: LayerStack | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.layers = layers if layers is not None else LayerStack(parent=window)
        self.panel = LayersPanel(self.layers, window.undo_stack)
        window.set_layers_panel(self.panel)
        self.view = LayerCanvas(self.layers, window.undo_stack, self.panel.current_layer_id)
        self.caption = QLabel()
        self.caption.setStyleSheet("padding: 2px 6px;")
        self.page = QWidget()
        layout = QVBoxLayout(self.page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.caption)
        layout.addWidget(self.view, 1)
        window.stack.addWidget(self.page)
        self._build_actions()
        self._connect()
        self._update_caption()

    # ---- construction ----------------------------------------------------------------

    def _build_actions(self) -> None:
        w = self.window
        self.canvas_action = QAction("Canvas", w, checkable=True)
        self.canvas_action.setShortcut(QKeySequence("Ctrl+L"))
        self.canvas_action.setToolTip("Show the layered canvas instead of the version (Ctrl+L)")
        self.add_action = QAction("Add to canvas", w)
        self.add_action.setShortcut(QKeySequence("Ctrl+Shift+A"))
        self.add_action.setToolTip(
            "Place the version (at the step shown) on the canvas as a new layer (Ctrl+Shift+A)"
        )
        self.fit_action = QAction("Fit canvas", w)
        for action in (self.canvas_action, self.add_action):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            w.addAction(action)

        self.toolbar = QToolBar("Canvas", w)
        self.toolbar.setObjectName("canvas_toolbar")
        self.toolbar.setMovable(False)
        self.toolbar.addAction(self.canvas_action)
        self.toolbar.addAction(self.add_action)
        w.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)

        self.menu = QMenu("&Layer", w)
        self.menu.addAction(self.add_action)
        self.menu.addSeparator()
        self.menu.addAction(self.canvas_action)
        self.menu.addAction(self.fit_action)
        bar = w.menuBar()
        anchor = next((a for a in bar.actions() if a.text().replace("&", "") == "Generate"), None)
        if anchor is not None:
            bar.insertMenu(anchor, self.menu)
        else:
            bar.addMenu(self.menu)

    def _connect(self) -> None:
        w = self.window
        self.canvas_action.toggled.connect(self.show_canvas)
        self.add_action.triggered.connect(lambda: self.add_version_to_canvas())
        self.fit_action.triggered.connect(self.view.fit)
        # the View menu's zoom keys act on whichever canvas is on screen
        w.fit_action.triggered.connect(lambda: self.is_canvas_shown() and self.view.fit())
        w.zoom_in_action.triggered.connect(
            lambda: self.is_canvas_shown() and self.view.zoom_by(1.25)
        )
        w.zoom_out_action.triggered.connect(
            lambda: self.is_canvas_shown() and self.view.zoom_by(0.8)
        )
        w.stack.currentChanged.connect(self._on_page_changed)
        self.view.layer_picked.connect(self.panel.select_layer)
        self.panel.source_version_requested.connect(self._show_source_version)
        versions_panel = getattr(w, "versions", None)
        if hasattr(versions_panel, "add_to_canvas_requested"):
            versions_panel.add_to_canvas_requested.connect(self.add_version_to_canvas)
        for signal in (
            self.layers.layer_inserted,
            self.layers.layer_removed,
            self.layers.size_changed,
        ):
            signal.connect(self._update_caption)

    # ---- the Canvas view --------------------------------------------------------------

    def is_canvas_shown(self) -> bool:
        return self.window.stack.currentWidget() is self.page

    def show_canvas(self, shown: bool = True) -> None:
        """Switch between the layered canvas and the version view."""
        if shown:
            self.window.stack.setCurrentWidget(self.page)
            self.window.layers_dock.show()
            self.window.layers_dock.raise_()
        elif self.is_canvas_shown():
            self.window.stack.setCurrentIndex(0)

    def _on_page_changed(self, _index: int) -> None:
        shown = self.is_canvas_shown()
        if self.canvas_action.isChecked() != shown:
            self.canvas_action.blockSignals(True)
            self.canvas_action.setChecked(shown)
            self.canvas_action.blockSignals(False)

    def _show_source_version(self, version_id: str) -> None:
        if version_id in self.window.tree:
            self.window.show_version(version_id)
        else:
            self.window.statusBar().showMessage("The version of this layer was deleted.", 5000)

    def _update_caption(self, *_args: object) -> None:
        count = len(self.layers)
        w, h = self.layers.size
        if count == 0:
            self.caption.setText(
                "Canvas · empty: add a version (Ctrl+Shift+A) or drop an image here."
            )
        else:
            noun = "layer" if count == 1 else "layers"
            self.caption.setText(
                f"Canvas · {count} {noun} · {w}×{h} · drag to move the selected layer"
            )

    # ---- adding layers --------------------------------------------------------------------

    def add_layer(self, layer: Layer) -> Layer:
        """Push one undoable "add layer" and select the new layer."""
        self.window.undo_stack.push(AddLayerCommand(self.layers, layer))
        self.panel.select_layer(layer.id)
        return layer

    def add_version_to_canvas(self, version_id: str | None = None) -> Layer | None:
        """Add a version as a layer linked to it: the step on screen for the current version,
        the result (or last step) for another one."""
        w = self.window
        current = w.current_version()
        version_id = version_id or (current.id if current is not None else None)
        if version_id is None or version_id not in w.tree:
            w.statusBar().showMessage("There is no version to add to the canvas.", 5000)
            return None
        version = w.tree.get(version_id)
        size = (version.recipe.width, version.recipe.height)
        name = version.name
        if (
            current is not None
            and version_id == current.id
            and w.canvas.current_array() is not None
        ):
            pixels = w.canvas.current_array()
            steps = w.tree.trajectory(version_id)
            position = w.timeline.position()
            if 0 <= position < len(steps) - 1 or (steps and version.result is None):
                step = steps[min(position, len(steps) - 1)]
                name = f"{version.name} · step {step.index + 1} of {step.total}"
            if w.static_action.isChecked():
                name += " · static x_t"
        elif version.result is not None:
            pixels = version.result
        elif version.steps:
            step = version.steps[-1]
            pixels = step.preview_x0
            name = f"{version.name} · step {step.index + 1} of {step.total}"
        else:
            w.statusBar().showMessage(f"{version.name} has no image yet.", 5000)
            return None
        layer = self.add_layer(
            Layer(at_recipe_size(pixels, size), name=name, source_version=version.id)
        )
        w.statusBar().showMessage(f"Added {name} to the canvas.", 5000)
        self.show_canvas(True)
        return layer


def at_recipe_size(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image at the recipe's size: previews arrive at latent resolution and are enlarged."""
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    image = Image.fromarray(np.ascontiguousarray(pixels))
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR)).copy()
