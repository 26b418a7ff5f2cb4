"""Picking a single-file model in the real window: its config folder is looked for among the
model folders off the UI thread (a big folder or a slow network drive never freezes the
window), remembered per file, asked for when none fits, and a newer pick drops the answer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QTimer

from studio.engine import model_refs
from studio.engine.models import load_model
from studio.engine.recipe import BUNDLED_MODEL
from studio.protocol import ModelLoaded
from studio.ui import panel_binding
from studio.ui.panel_binding import MODEL_CONFIGS_KEY, MODEL_FOLDERS_KEY
from studio.workers.local import LocalWorker
from tests.ui.conftest import GENERATION_TIMEOUT_MS, open_window

SCAN_SECONDS = 2.0
TICK_MS = 20


class SlowScan:
    """``find_config_folder`` on a slow drive: it sleeps, then finds ``answer``."""

    def __init__(self, answer: Path | None, seconds: float = SCAN_SECONDS) -> None:
        self.answer, self.seconds = answer, seconds
        self.calls: list[tuple[Path, list[Path], str]] = []
        self.began = self.ended = 0.0

    def __call__(self, weights: Path, folders: list[Path]) -> Path | None:
        self.calls.append((weights, list(folders), threading.current_thread().name))
        self.began = time.monotonic()
        time.sleep(self.seconds)
        self.ended = time.monotonic()
        return self.answer


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A model folder holding a single file and a config folder, and a settings file naming it."""
    folder = tmp_path / "models"
    config = folder / "sd-config"
    config.mkdir(parents=True)
    weights = folder / "painting.safetensors"
    weights.write_bytes(b"not read: the worker's loader is a fake")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue(MODEL_FOLDERS_KEY, [str(folder)])
    settings.sync()
    return weights, config, tmp_path / "settings.ini"


@pytest.fixture
def studio(qtbot, tiny_model_dir, models):
    """The window, with a worker whose loader records what it was asked to load and loads the
    tiny model for a single file (its pairing, not its weights, is what these tests are about)."""
    loads: list[tuple[str, str]] = []

    def load(ref: str, config: str = ""):
        loads.append((ref, config))
        return load_model(str(tiny_model_dir) if config else ref)

    win = open_window(qtbot, tiny_model_dir, models[2], worker=LocalWorker(load_model=load))
    yield win, loads
    win.close()


def loaded(ref: str):
    return lambda message: isinstance(message, ModelLoaded) and message.ref == ref


def test_a_slow_scan_leaves_the_window_responsive_and_its_pairing_loads(
    qtbot, studio, models, monkeypatch
):
    win, loads = studio
    weights, config, _settings = models
    scan = SlowScan(config)
    monkeypatch.setattr(model_refs, "find_config_folder", scan)
    ticks: list[float] = []
    timer = QTimer(interval=TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()

    with qtbot.waitSignal(
        win.session.message_handled,
        timeout=GENERATION_TIMEOUT_MS,
        check_params_cb=loaded(str(weights)),
    ):
        picked = time.monotonic()
        win.panel.select_model(str(weights))
        assert time.monotonic() - picked < SCAN_SECONDS / 4, "picking waited for the scan"
        assert (
            "Looking for the config folder of painting.safetensors" in win.panel.model_note.text()
        )
        assert win.generate() is None and "Still looking" in win.panel.error_text()
    timer.stop()

    assert [(w, f) for w, f, _ in scan.calls] == [(weights, [weights.parent])]
    assert scan.calls[0][2] != threading.current_thread().name, "the scan ran on the UI thread"
    during = [t for t in ticks if scan.began < t < scan.ended]
    assert len(during) >= SCAN_SECONDS * 1000 / TICK_MS / 5, "the event loop stalled in the scan"
    assert loads[-1] == (str(weights), str(config))
    assert (win.session.model.ref, win.session.model.config) == (str(weights), str(config))
    assert win.panel.model_note.text() == ""
    assert win.settings.value(MODEL_CONFIGS_KEY) == {str(weights): str(config)}
    # The recipe records the folder, so a resume of the run loads the file with it.
    assert win.binding.checked_recipe().model_config == str(config)

    # Remembered: picking the file again loads it with its folder without another scan.
    with qtbot.waitSignal(win.session.message_handled, check_params_cb=loaded(BUNDLED_MODEL)):
        win.panel.select_model(BUNDLED_MODEL)
    with qtbot.waitSignal(win.session.message_handled, check_params_cb=loaded(str(weights))):
        win.panel.select_model(str(weights))
    assert len(scan.calls) == 1 and loads[-1] == (str(weights), str(config))


def test_with_none_found_the_user_is_asked_and_cancelling_keeps_the_model(
    qtbot, studio, models, monkeypatch
):
    win, loads = studio
    weights = models[0]
    before = win.session.model.ref
    scan = SlowScan(None, seconds=0.2)
    monkeypatch.setattr(model_refs, "find_config_folder", scan)
    asked: list[str] = []

    def cancel_dialog(_parent, title: str) -> str:
        asked.append(title)
        return ""

    monkeypatch.setattr(panel_binding.QFileDialog, "getExistingDirectory", cancel_dialog)
    win.panel.select_model(str(weights))
    qtbot.waitUntil(lambda: "needs a config folder" in win.panel.error_text(), timeout=5000)
    assert asked == ["Choose the config folder for painting.safetensors (a diffusers folder)"]
    assert win.panel.model_ref() == before == win.session.model.ref
    assert all(ref != str(weights) for ref, _ in loads)
    assert not win.settings.value(MODEL_CONFIGS_KEY)


def test_a_newer_pick_drops_the_answer_of_a_scan_still_running(qtbot, studio, models, monkeypatch):
    win, loads = studio
    weights, config, _settings = models
    scan = SlowScan(config, seconds=0.5)
    monkeypatch.setattr(model_refs, "find_config_folder", scan)
    win.panel.select_model(str(weights))
    qtbot.waitUntil(lambda: bool(scan.calls))
    win.panel.select_model(BUNDLED_MODEL)
    qtbot.waitUntil(lambda: scan.ended > 0, timeout=5000)
    qtbot.wait(200)  # the queued answer has arrived and been dropped
    assert win.session.model.ref == BUNDLED_MODEL == win.panel.model_ref()
    assert all(ref != str(weights) for ref, _ in loads)
    assert win.panel.model_note.text() == ""
    assert not win.settings.value(MODEL_CONFIGS_KEY)
