"""The "Score plug-ins…" dialog: which local folders the optional scorer plug-ins read.

The user names a CLIP folder (the ``clip`` plug-in) and, optionally, an aesthetic head
folder (the ``aesthetic`` plug-in, which reads that CLIP's image embedding). Both are
kept in QSettings and checked with :func:`~studio.engine.plugins.check_plugins` when
the dialog is accepted: header checks only, nothing imported or loaded, so it is cheap
on the UI thread. A folder that fails is refused with one sentence and nothing is
stored. Nothing is ever downloaded; with no folder named, scoring uses no plug-in.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.engine.errors import EngineError
from studio.engine.plugins import PluginSpec, check_plugins

CLIP_KEY = "scores/plugin_clip"
AESTHETIC_KEY = "scores/plugin_aesthetic"
"""QSettings: the CLIP folder and the aesthetic head folder ("" for none)."""


def plugin_specs(clip: str, aesthetic: str = "") -> tuple[PluginSpec, ...]:
    """The plug-ins these folders name: none without a CLIP folder (a head reads CLIP)."""
    clip, aesthetic = clip.strip(), aesthetic.strip()
    if not clip:
        return ()
    specs = [PluginSpec("clip", clip)]
    if aesthetic:
        specs.append(PluginSpec("aesthetic", aesthetic, clip))
    return tuple(specs)


def stored_plugins(settings: QSettings | None) -> tuple[PluginSpec, ...]:
    """The plug-ins the user named in the dialog (none when no settings or none named)."""
    if settings is None:
        return ()
    return plugin_specs(str(settings.value(CLIP_KEY, "")), str(settings.value(AESTHETIC_KEY, "")))


class PluginSettingsDialog(QDialog):
    """Two folder fields; accepting checks them and stores them, or shows why not."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Score plug-ins")
        self._settings = settings
        self.clip = QLineEdit(str(settings.value(CLIP_KEY, "")))
        self.clip.setPlaceholderText("none: score without CLIP")
        self.aesthetic = QLineEdit(str(settings.value(AESTHETIC_KEY, "")))
        self.aesthetic.setPlaceholderText("none (optional; reads the CLIP folder's embedding)")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        form = QFormLayout()
        form.addRow("CLIP folder", self._with_browse(self.clip))
        form.addRow("Aesthetic head folder", self._with_browse(self.aesthetic))
        note = QLabel(
            "Optional scores from weights already on this computer; nothing is downloaded. "
            "Each adds a value per version in the Scores dock and an order in Versions."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

    def _with_browse(self, field: QLineEdit) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda: self._browse(field))
        layout.addWidget(field, 1)
        layout.addWidget(browse)
        return row

    def _browse(self, field: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", field.text())
        if folder:
            field.setText(folder)

    def accept(self) -> None:
        clip, aesthetic = self.clip.text().strip(), self.aesthetic.text().strip()
        if aesthetic and not clip:
            self.message.setText(
                "An aesthetic head reads a CLIP embedding: name the CLIP folder too."
            )
            return
        try:
            check_plugins(plugin_specs(clip, aesthetic))
        except (EngineError, OSError) as exc:
            self.message.setText(str(exc))
            return
        self._settings.setValue(CLIP_KEY, clip)
        self._settings.setValue(AESTHETIC_KEY, aesthetic)
        self.message.setText("")
        super().accept()
