"""Fixtures for driving the real studio window (offscreen) on a tiny random model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from studio.protocol import ModelList, ModelLoaded
from studio.session import Session
from studio.ui.main_window import MainWindow
from studio.workers.local import LocalWorker

GENERATION_TIMEOUT_MS = 60_000


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny test models gain nothing from intra-op threads, and on a busy shared
    machine their spin-waits cost more than the work; the engine tests keep the default."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def open_window(qtbot, model_dir: Path, settings_path: Path, worker=None) -> MainWindow:
    """A shown studio window with its worker running, the model loaded and a small recipe set."""
    settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
    session = Session(worker if worker is not None else LocalWorker(), str(model_dir))
    win = MainWindow(session, settings)
    qtbot.addWidget(win)
    win.show()
    seen: list[type] = []

    def record(message: object) -> None:
        seen.append(type(message))

    win.session.message_handled.connect(record)
    win.start_worker()
    # The start-up listing too: a test's own ListModels must not be overtaken by it.
    qtbot.waitUntil(
        lambda: ModelLoaded in seen and ModelList in seen, timeout=GENERATION_TIMEOUT_MS
    )
    win.session.message_handled.disconnect(record)
    set_small_recipe(win)
    return win


@pytest.fixture
def window(qtbot, tiny_model_dir: Path, tmp_path: Path) -> Iterator[MainWindow]:
    """The studio window with its worker running and the tiny model loaded."""
    win = open_window(qtbot, tiny_model_dir, tmp_path / "settings.ini")
    yield win
    win.close()
    assert not win.session.client.is_running


def set_small_recipe(
    win: MainWindow, prompt: str = "a red fox in the snow", steps: int = 6
) -> None:
    panel = win.panel
    panel.prompt.setPlainText(prompt)
    panel.negative.setPlainText("")
    panel.seed_random.setChecked(False)
    panel.seed.setText("1234")
    panel.steps.setValue(steps)
    panel.guidance.setValue(5.0)
    panel.sampler.setCurrentText("Euler a")
    panel.width_box.setValue(32)
    panel.height_box.setValue(32)


def generate_and_wait(qtbot, win: MainWindow, timeout: int = GENERATION_TIMEOUT_MS):
    """Press Generate and wait until its version is finished; returns the Version."""
    with qtbot.waitSignal(win.session.tree.version_finished, timeout=timeout) as blocker:
        job = win.generate()
        assert job is not None, win.panel.error_text()
    return win.session.tree.get(blocker.args[0])


def own_steps(win: MainWindow, version) -> list:
    """The step records a version produced itself (not the ones it inherits)."""
    return [win.session.tree.steps.step(version.id, i) for i in version.step_indices]


def result_of(win: MainWindow, version):
    return win.session.tree.result(version.id)


def drag_enter_event(x: int, y: int, *args):
    """A QDragEnterEvent at (x, y): PySide6 takes a QPoint up to 6.11 and a QPointF since."""
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QDragEnterEvent

    try:
        return QDragEnterEvent(QPointF(x, y), *args)
    except TypeError:
        return QDragEnterEvent(QPoint(x, y), *args)
