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
from studio.document.layers import Layer
from studio.session import Session
from studio.ui.layer_canvas import LayerCanvas
from studio.ui.layers_panel import LayersPanel


class CanvasWorkspace(QObject):
    """The Canvas view of the session's layer stack, its layers panel, actions and Layer menu.

    It places nothing in the window: the window puts :attr:`page` in its central
    stack, :attr:`panel` in its Layers dock, :attr:`toolbar` and :attr:`menu` in
    its bars, and adds :meth:`actions` to itself for their shortcuts. Whether the
    canvas is on view is the session's view state (``session.view.canvas_shown``);
    :attr:`canvas_action` sets it and follows it.
    """

    def __init__(self, session: Session, parent: QWidget) -> None:
        super().__init__(parent)
        self.session = session
        self.layers = session.layers
        self.panel = LayersPanel(session.layers, session.undo_stack)
        self.view = LayerCanvas(session.layers, session.undo_stack, self.panel.current_layer_id)
        self.caption = QLabel()
        self.caption.setStyleSheet("padding: 2px 6px;")
        self.page = QWidget()
        layout = QVBoxLayout(self.page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.caption)
        layout.addWidget(self.view, 1)
        self._build_actions(parent)
        self._connect()
        self._update_caption()

    # ---- construction ----------------------------------------------------------------

    def _build_actions(self, parent: QWidget) -> None:
        self.canvas_action = QAction("Canvas", parent, checkable=True)
        self.canvas_action.setShortcut(QKeySequence("Ctrl+L"))
        self.canvas_action.setToolTip("Show the layered canvas instead of the version (Ctrl+L)")
        self.canvas_action.setChecked(self.session.view.canvas_shown)
        self.add_action = QAction("Add to canvas", parent)
        self.add_action.setShortcut(QKeySequence("Ctrl+Shift+A"))
        self.add_action.setToolTip(
            "Place the version (at the step shown) on the canvas as a new layer (Ctrl+Shift+A)"
        )
        self.fit_action = QAction("Fit canvas", parent)
        for action in self.actions():
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)

        self.toolbar = QToolBar("Canvas", parent)
        self.toolbar.setObjectName("canvas_toolbar")
        self.toolbar.setMovable(False)
        self.toolbar.addAction(self.canvas_action)
        self.toolbar.addAction(self.add_action)

        self.menu = QMenu("&Layer", parent)
        self.menu.addAction(self.add_action)
        self.menu.addSeparator()
        self.menu.addAction(self.canvas_action)
        self.menu.addAction(self.fit_action)

    def actions(self) -> list[QAction]:
        """The actions with window-wide shortcuts; the window adds them to itself."""
        return [self.canvas_action, self.add_action]

    def _connect(self) -> None:
        self.canvas_action.toggled.connect(self.show_canvas)
        self.session.view.canvas_shown_changed.connect(self._on_canvas_shown)
        self.add_action.triggered.connect(lambda: self.add_version_to_canvas())
        self.fit_action.triggered.connect(self.view.fit)
        self.view.layer_picked.connect(self.panel.select_layer)
        self.panel.source_version_requested.connect(self._show_source_version)
        for signal in (
            self.layers.layer_inserted,
            self.layers.layer_removed,
            self.layers.size_changed,
        ):
            signal.connect(self._update_caption)

    # ---- the Canvas view --------------------------------------------------------------

    def is_canvas_shown(self) -> bool:
        return self.session.view.canvas_shown

    def show_canvas(self, shown: bool = True) -> None:
        """Switch between the layered canvas and the version view (the session's view state)."""
        self.session.view.set_canvas_shown(shown)

    def zoom_by(self, factor: float) -> None:
        self.view.zoom_by(factor)

    def fit(self) -> None:
        self.view.fit()

    def _on_canvas_shown(self, shown: bool) -> None:
        if self.canvas_action.isChecked() != shown:
            self.canvas_action.blockSignals(True)
            self.canvas_action.setChecked(shown)
            self.canvas_action.blockSignals(False)

    def _show_source_version(self, version_id: str) -> None:
        if version_id in self.session.tree:
            self.session.show_version(version_id)
        else:
            self.session.status.emit("The version of this layer was deleted.", 5000)

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
        self.session.undo_stack.push(AddLayerCommand(self.layers, layer))
        self.panel.select_layer(layer.id)
        return layer

    def add_version_to_canvas(self, version_id: str | None = None) -> Layer | None:
        """Add a version as a layer linked to it: the step on screen for the current version,
        the result (or last step) for another one."""
        session, tree = self.session, self.session.tree
        current = session.current_version()
        version_id = version_id or (current.id if current is not None else None)
        if version_id is None or version_id not in tree:
            session.status.emit("There is no version to add to the canvas.", 5000)
            return None
        version = tree.get(version_id)
        size = (version.recipe.width, version.recipe.height)
        name = version.name
        frame = session.frame() if current is not None and version_id == current.id else None
        result = tree.result(version_id)
        last = tree.last_step(version_id)
        if frame is not None and frame.image is not None:
            pixels = frame.image
            at_end = session.view.position >= session.last_position()
            if frame.step is not None and (not at_end or result is None):
                name = f"{version.name} · step {frame.step.index + 1} of {frame.step.total}"
            if session.view.static:
                name += " · static x_t"
        elif result is not None:
            pixels = result
        elif last is not None:
            pixels = last.preview_x0
            name = f"{version.name} · step {last.index + 1} of {last.total}"
        else:
            session.status.emit(f"{version.name} has no image yet.", 5000)
            return None
        layer = self.add_layer(
            Layer(at_recipe_size(pixels, size), name=name, source_version=version.id)
        )
        session.status.emit(f"Added {name} to the canvas.", 5000)
        self.show_canvas(True)
        return layer


def at_recipe_size(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image at the recipe's size: previews arrive at latent resolution and are enlarged."""
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    image = Image.fromarray(np.ascontiguousarray(pixels))
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR)).copy()
