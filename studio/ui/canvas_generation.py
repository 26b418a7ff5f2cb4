"""Generating on the canvas: "Generate from this layer" (image-to-image at a strength).

Receives the session, the prompt panel (whose recipe gives prompt, seed and
sampler) and the layers panel (whose current layer is the init image), never the
window. The run goes through :meth:`Session.generate_from_layer`, so its version
is like any other: scrubbable, branchable and breedable.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QInputDialog, QMenu, QMessageBox, QWidget

from studio.engine.recipe import RecipeError
from studio.session import Session
from studio.ui.layers_panel import LayersPanel
from studio.ui.prompt_panel import PromptPanel

DEFAULT_STRENGTH = 0.6


class CanvasGeneration(QObject):
    """The "Generate from this layer…" action, in the Generate menu and the layers' context menu."""

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

    def place_in(self, menu: QMenu) -> None:
        menu.addSeparator()
        menu.addAction(self.from_layer_action)

    def ask_strength(self) -> float | None:
        value, accepted = QInputDialog.getDouble(
            self._window,
            "Generate from this layer",
            "Strength (0: the layer as it is, 1: from noise alone):",
            self.strength,
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
        try:
            return self._session.generate_from_layer(layer_id, self._prompt.recipe(), strength)
        except RecipeError as exc:
            self.show_error(str(exc))
            return None

    def show_error(self, text: str) -> None:
        QMessageBox.warning(self._window, "Generate from this layer", text)
