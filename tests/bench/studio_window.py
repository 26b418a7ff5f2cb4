"""Shared set-up for the window benchmarks: a real MainWindow on a model, driven without sleeps."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

if not os.environ.get("DISPLAY"):  # with a display (e.g. Xvfb) measure real painting
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def model_ref(requested: str | None) -> str:
    """The requested model; else the bundled one if present; else a freshly built tiny model."""
    if requested:
        return requested
    if (ROOT / "studio" / "resources" / "models" / "noise-world" / "model_index.json").is_file():
        return "bundled"
    from tests.tiny_models import build_tiny_pipeline

    folder = Path(tempfile.mkdtemp(prefix="bench-tiny-")) / "tiny-sd"
    print("bundled model not found; using a tiny random model", file=sys.stderr)
    return str(build_tiny_pipeline(folder))


def open_window(ref: str):
    """(app, window) with the model loaded."""
    from studio.protocol import ModelFailed, ModelLoaded
    from studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(model_ref=ref, settings=settings)
    window.show()
    got = wait_for(window, (ModelLoaded, ModelFailed), lambda: window.start_worker())
    if isinstance(got, ModelFailed):
        raise SystemExit(f"model failed to load: {got.error}")
    return app, window


def wait_for(window, kinds, action=None, timeout_s: float = 600):
    """Run ``action`` and spin the event loop until the window handled a message of ``kinds``."""
    loop = QEventLoop()
    got: list[object] = []

    def on_message(message: object) -> None:
        if isinstance(message, kinds) and not got:
            got.append(message)
            loop.quit()

    window.session.message_handled.connect(on_message)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    if action is not None:
        action()
    if not got:
        loop.exec()
    window.session.message_handled.disconnect(on_message)
    if not got:
        raise TimeoutError(f"no {kinds} within {timeout_s} s")
    return got[0]


def fill_recipe(
    window, prompt: str, steps: int, size: int, seed: int = 1234, sampler: str = "Euler a"
) -> None:
    panel = window.panel
    panel.prompt.setPlainText(prompt)
    panel.seed_random.setChecked(False)
    panel.seed.setText(str(seed))
    panel.steps.setValue(steps)
    panel.sampler.setCurrentText(sampler)
    panel.width_box.setValue(size)
    panel.height_box.setValue(size)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
