"""Generate ▸ Memory saving…: a choice per saver, stored in QSettings, sent with every model
load, and a change loads the current model again with the new savers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDialog, QLabel

from studio.engine.memory_saving import SETTINGS_ENV, MemorySaving, tiling_when_short
from studio.protocol import ModelLoaded, ModelLoading
from studio.ui.memory_saving_settings import KEY_PREFIX, MemorySavingDialog
from studio.workers.local import LocalWorker, _default_load_model
from tests.ui.conftest import GENERATION_TIMEOUT_MS, open_window


@pytest.fixture(autouse=True)
def no_environment_savers(monkeypatch):
    monkeypatch.delenv(SETTINGS_ENV, raising=False)


class RecordingLoader:
    """The worker's own loader, keeping each model it loads and the savers it was asked for."""

    def __init__(self) -> None:
        self.models: list = []
        self.asked: list[str] = []

    def __call__(self, ref: str, config: str = "", memory_saving: str = ""):
        self.asked.append(memory_saving)
        model = _default_load_model(ref, config, memory_saving)
        self.models.append(model)
        return model


def _studio(qtbot, tiny_model_dir: Path, tmp_path: Path, loader: RecordingLoader):
    worker = LocalWorker(load_model=loader)
    return open_window(qtbot, tiny_model_dir, tmp_path / "settings.ini", worker=worker)


def _memory_action(win):
    (action,) = [a for a in win.menus["generate"].actions() if "Memory saving" in a.text()]
    return action


def _choose(monkeypatch, **choices: str) -> None:
    """Answer the next dialog with ``choices`` (saver → "auto"/"on"/"off") and OK."""

    def answer(dialog: MemorySavingDialog) -> QDialog.DialogCode:
        for name, value in choices.items():
            box = dialog.choices[name]
            box.setCurrentIndex(box.findData(value))
        dialog.accept()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(MemorySavingDialog, "exec", answer)


def test_choosing_vae_tiling_on_reloads_the_model_with_tiling_forced_on(
    qtbot, tiny_model_dir, tmp_path, monkeypatch
):
    loader = RecordingLoader()
    win = _studio(qtbot, tiny_model_dir, tmp_path, loader)
    first = loader.models[-1]
    latent = torch.zeros(1, 4, 8, 8)
    with tiling_when_short(first, latent) as tiled:
        assert not tiled  # automatic: the tiny decode fits
    seen: list[object] = []
    win.session.message_handled.connect(seen.append)
    _choose(monkeypatch, vae_tiling="on")
    with qtbot.waitSignal(
        win.session.message_handled,
        timeout=GENERATION_TIMEOUT_MS,
        check_params_cb=lambda m: isinstance(m, ModelLoaded),
    ):
        _memory_action(win).trigger()
    assert any(isinstance(m, ModelLoading) for m in seen)
    model = loader.models[-1]
    assert model is not first
    assert loader.asked[-1] == "vae_tiling=on"
    assert model.memory_saving == MemorySaving(vae_tiling="on")
    with tiling_when_short(model, latent) as tiled:
        assert tiled and model.vae.use_tiling
    assert not model.vae.use_tiling  # only for the decode
    assert win.session.model.loaded
    win.close()


def test_the_memory_saving_survives_a_new_window(qtbot, tiny_model_dir, tmp_path, monkeypatch):
    win = _studio(qtbot, tiny_model_dir, tmp_path, RecordingLoader())
    _choose(monkeypatch, vae_tiling="on", cpu_offload="off")
    with qtbot.waitSignal(
        win.session.message_handled,
        timeout=GENERATION_TIMEOUT_MS,
        check_params_cb=lambda m: isinstance(m, ModelLoaded),
    ):
        _memory_action(win).trigger()
    win.close()

    loader = RecordingLoader()
    again = _studio(qtbot, tiny_model_dir, tmp_path, loader)
    assert loader.asked == ["vae_tiling=on,cpu_offload=off"]  # the first load, no second
    assert loader.models[-1].memory_saving == MemorySaving(vae_tiling="on", cpu_offload="off")
    dialog = MemorySavingDialog(again.settings)
    qtbot.addWidget(dialog)
    assert dialog.choices["vae_tiling"].currentData() == "on"
    assert dialog.choices["attention_slicing"].currentData() == "auto"
    assert dialog.choices["cpu_offload"].currentData() == "off"
    again.close()


def test_a_bad_stored_value_falls_back_to_automatic(qtbot, tiny_model_dir, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue(KEY_PREFIX + "vae_tiling", "sometimes")
    settings.setValue(KEY_PREFIX + "attention_slicing", 3)
    settings.setValue(KEY_PREFIX + "cpu_offload", "on")
    settings.sync()
    loader = RecordingLoader()
    win = _studio(qtbot, tiny_model_dir, tmp_path, loader)
    assert loader.asked == ["cpu_offload=on"]
    assert loader.models[-1].memory_saving == MemorySaving(cpu_offload="on")
    dialog = MemorySavingDialog(win.settings)
    qtbot.addWidget(dialog)
    assert dialog.choices["vae_tiling"].currentData() == "auto"
    assert dialog.choices["attention_slicing"].currentText().startswith("Automatic")
    win.close()


def test_the_dialog_says_when_the_environment_overrides_it(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv(SETTINGS_ENV, "vae_tiling=off")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    dialog = MemorySavingDialog(settings)
    qtbot.addWidget(dialog)
    texts = [label.text() for label in dialog.findChildren(QLabel)]
    assert any(SETTINGS_ENV in text and "vae_tiling=off" in text for text in texts)
    assert SETTINGS_ENV in dialog.choices["vae_tiling"].toolTip()
