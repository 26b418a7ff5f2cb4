"""Generating on the canvas: "Generate from this layer" (image-to-image at a strength)
and "Inpaint" (the same inside the canvas's painted mask).

Receives the session, the prompt panel (whose recipe gives prompt, seed and
sampler) and the layers panel (whose current layer is the init image), never the
window. The run goes through :meth:`Session.generate_from_layer`, so its version
is like any other: scrubbable, branchable and breedable. Inpaint hands it the
part of the session's mask (:class:`~studio.document.canvas_mask.CanvasMask`)
that lies under the layer.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QInputDialog, QMenu, QMessageBox, QWidget

from studio.engine.recipe import RecipeError
from studio.session import Session
from studio.ui.layers_panel import LayersPanel
from studio.ui.prompt_panel import PromptPanel

DEFAULT_STRENGTH = 0.6
DEFAULT_INPAINT_STRENGTH = 0.8


class CanvasGeneration(QObject):
    """The "Generate from this layer…" and "Inpaint…" actions, in the Generate menu and the
    layers' context menu."""

    def __init__(
        self, session: Session, prompt: PromptPanel, layers: LayersPanel, window: QWidget
    ) -> None:
        super().__init__(window)
        self._session, self._prompt, self._layers, self._window = session, prompt, layers, window
        self.strength = DEFAULT_STRENGTH
        self.from_layer_action = QAction("Generate from this layer…", window)
        self.from_layer_action.setToolTip(
            "Push the selected layer into noise to the chosen strength and let the prompt "
            "sculpt it back (image-to-image)"
        )
        self.from_layer_action.triggered.connect(self.ask_and_generate)
        layers.list.addAction(self.from_layer_action)
        self.inpaint_strength = DEFAULT_INPAINT_STRENGTH
        self.inpaint_action = QAction("Inpaint…", window)
        self.inpaint_action.setShortcut(QKeySequence("Ctrl+Shift+Return"))
        self.inpaint_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.inpaint_action.setToolTip(
            "Repaint the selected layer inside the painted mask with the prompt; outside it "
            "the layer stays as it is (Ctrl+Shift+Return)"
        )
        self.inpaint_action.triggered.connect(self.ask_and_inpaint)
        layers.list.addAction(self.inpaint_action)
        window.addAction(self.inpaint_action)

    def place_in(self, menu: QMenu) -> None:
        menu.addSeparator()
        menu.addAction(self.from_layer_action)
        menu.addAction(self.inpaint_action)

    def ask_strength(self, title: str = "Generate from this layer") -> float | None:
        inpainting = title == "Inpaint"
        value, accepted = QInputDialog.getDouble(
            self._window,
            title,
            "Strength (0: the layer as it is, 1: from noise alone):",
            self.inpaint_strength if inpainting else self.strength,
            0.0,
            1.0,
            2,
        )
        return float(value) if accepted else None

    def ask_and_generate(self) -> int | None:
        if not self._layers.current_layer_id():
            self.show_error("Select a layer on the canvas first.")
            return None
        strength = self.ask_strength()
        return None if strength is None else self.generate_from_layer(strength)

    def generate_from_layer(self, strength: float) -> int | None:
        """Send the job for the current layer at ``strength``; None (and a sentence) if refused."""
        layer_id = self._layers.current_layer_id()
        if not layer_id:
            self.show_error("Select a layer on the canvas first.")
            return None
        self.strength = strength
        return self._send(layer_id, strength, None)

    def layer_mask(self) -> tuple[str, np.ndarray] | None:
        """The current layer and the painted mask under it; None (and a sentence) if either
        is missing."""
        layer_id = self._layers.current_layer_id()
        if not layer_id:
            self.show_error("Select a layer on the canvas first.")
            return None
        layer = self._session.layers.layer(layer_id)
        mask = self._session.mask.crop(layer.offset, (layer.width, layer.height))
        if not mask.any():
            self.show_error(
                f"Paint a mask over {layer.name} first: Q turns on mask mode, B paints."
            )
            return None
        return layer_id, mask

    def ask_and_inpaint(self) -> int | None:
        found = self.layer_mask()
        if found is None:
            return None
        strength = self.ask_strength("Inpaint")
        return None if strength is None else self.inpaint(strength)

    def inpaint(self, strength: float) -> int | None:
        """Send an inpaint of the current layer inside the painted mask at ``strength``."""
        found = self.layer_mask()
        if found is None:
            return None
        layer_id, mask = found
        self.inpaint_strength = strength
        return self._send(layer_id, strength, mask)

    def _send(self, layer_id: str, strength: float, mask: np.ndarray | None) -> int | None:
        try:
            return self._session.generate_from_layer(
                layer_id, self._prompt.recipe(), strength, mask=mask
            )
        except RecipeError as exc:
            self.show_error(str(exc))
            return None

    def show_error(self, text: str) -> None:
        QMessageBox.warning(self._window, "Generate on the canvas", text)
