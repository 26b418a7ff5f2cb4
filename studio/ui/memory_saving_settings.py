"""The "Memory saving…" dialog (Generate menu): VAE tiling, attention slicing and CPU
offload, each Automatic (only when memory is short), On or Off.

The choices live in QSettings, one key per saver, and travel to the worker with every
model load (``LoadModel.memory_saving``, see :mod:`studio.engine.memory_saving`).
Accepting a change loads the current model again with the new savers, once the job
running now has ended, since slicing and offload are fixed when a model loads. Where
$NOISE_STUDIO_MEMORY_SAVING is set in the worker's environment, the savers it names
follow it instead (as the CLI's environment does); ``--memory-saving`` is the CLI's own.
A stored value the dialog does not know reads as Automatic.
"""

from __future__ import annotations

import os
from dataclasses import fields

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QMenu,
    QWidget,
)

from studio.engine.memory_saving import CHOICES, SETTINGS_ENV, MemorySaving
from studio.session import Session

KEY_PREFIX = "memory_saving/"
"""QSettings: ``memory_saving/<saver>`` is "auto", "on" or "off"."""
CHOICE_LABELS = {"auto": "Automatic (only when memory is short)", "on": "On", "off": "Off"}
SAVERS = {
    "vae_tiling": (
        "VAE tiling",
        "Decodes the finished image in overlapping tiles, so large images fit; the steps "
        "are not changed.",
    ),
    "attention_slicing": (
        "Attention slicing",
        "Computes attention a few heads at a time: less memory, a little slower "
        "(automatic: on Apple GPUs only).",
    ),
    "cpu_offload": (
        "CPU offload",
        "Keeps the model in RAM and moves each part to the GPU only while it runs: far "
        "less GPU memory, slower.",
    ),
}
PRECEDENCE = (
    f"${SETTINGS_ENV} (e.g. vae_tiling=on), where it is set, overrides the savers it names."
)


def stored_memory_saving(settings: QSettings) -> MemorySaving:
    """The savers as stored; Automatic for any that is missing or not a known choice."""
    chosen = {}
    for saver in fields(MemorySaving):
        value = str(settings.value(KEY_PREFIX + saver.name, "auto")).strip().lower()
        chosen[saver.name] = value if value in CHOICES else "auto"
    return MemorySaving(**chosen)


class MemorySavingDialog(QDialog):
    """One choice per saver, each with a line on what it does (stored in QSettings)."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Memory saving")
        self.setToolTip(PRECEDENCE)
        self._settings = settings
        stored = stored_memory_saving(settings)
        form = QFormLayout(self)
        self.choices: dict[str, QComboBox] = {}
        for name, (label, explanation) in SAVERS.items():
            box = QComboBox()
            for choice in CHOICES:
                box.addItem(CHOICE_LABELS[choice], choice)
            box.setCurrentIndex(box.findData(getattr(stored, name)))
            box.setToolTip(PRECEDENCE)
            self.choices[name] = box
            form.addRow(label, box)
            note = QLabel(explanation)
            note.setWordWrap(True)
            form.addRow(note)
        form.addRow(QLabel("Applies at once: the model loads again with these savers."))
        environment = os.environ.get(SETTINGS_ENV, "").strip()
        if environment:
            form.addRow(QLabel(f"${SETTINGS_ENV} is set ({environment}) and overrides them."))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        for name, box in self.choices.items():
            self._settings.setValue(KEY_PREFIX + name, box.currentData())
        super().accept()


def place_memory_saving_action(
    menu: QMenu, settings: QSettings, session: Session, parent: QWidget
) -> QAction:
    """Generate ▸ Memory saving…, opening :class:`MemorySavingDialog`; the session loads
    models with the stored savers from the start, and an accepted change reloads the model."""
    session.model.memory_saving = stored_memory_saving(settings).text()
    action = menu.addAction("&Memory saving…")

    def choose() -> None:
        if MemorySavingDialog(settings, parent).exec() == QDialog.DialogCode.Accepted:
            session.set_memory_saving(stored_memory_saving(settings).text())

    action.triggered.connect(choose)
    return action
