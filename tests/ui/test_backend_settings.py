"""The window's backend setting: stored in QSettings, connected to off the UI thread (the
window keeps running meanwhile), a cluster that cannot be reached offers the in-process
worker in one message, and a new choice applies without a restart."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QTimer

import studio.workers.ray_client as ray_client
from studio.protocol import JobFailed, ModelLoaded
from studio.session import Session
from studio.ui.backend_settings import (
    ADDRESS_KEY,
    BACKEND_KEY,
    BackendDialog,
    backend_choice,
    worker_client,
)
from studio.ui.main_window import MainWindow
from studio.workers.local import LocalWorker
from studio.workers.ray_client import RayWorker
from tests.ui.conftest import GENERATION_TIMEOUT_MS, set_small_recipe

UNREACHABLE = "127.0.0.1:1"  # refused at once


def _settings(path: Path) -> QSettings:
    return QSettings(str(path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def silent_address(monkeypatch) -> Iterator[str]:
    """A loopback port that never answers: its listen backlog is full, so a connection
    attempt hangs until the client's timeout (one second here) instead of being refused."""
    monkeypatch.setattr(ray_client, "CONNECT_SECONDS", 1.0)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname(), timeout=1.0)
    yield f"127.0.0.1:{server.getsockname()[1]}"
    filler.close()
    server.close()


def _window(qtbot, model_dir: Path, tmp_path: Path, client, ask) -> MainWindow:
    win = MainWindow(Session(client, str(model_dir)), _settings(tmp_path))
    qtbot.addWidget(win)
    win.backend.ask = ask
    win.show()
    set_small_recipe(win, steps=3)
    return win


def test_the_dialog_stores_the_backend_and_the_worker_follows_it(qtbot, tmp_path):
    settings = _settings(tmp_path)
    assert backend_choice(settings) == ("local", "")
    assert isinstance(worker_client(settings), LocalWorker)
    dialog = BackendDialog(settings)
    qtbot.addWidget(dialog)
    assert not dialog.address.isEnabled()
    dialog.kind.setCurrentIndex(dialog.kind.findData("ray"))
    assert dialog.address.isEnabled()
    dialog.address.setText(" head:6379 ")
    dialog.accept()
    assert backend_choice(settings) == ("ray", "head:6379")
    assert isinstance(worker_client(settings), RayWorker)


def test_connecting_never_blocks_the_window_and_a_silent_cluster_offers_in_process(
    qtbot, tiny_model_dir, tmp_path, silent_address
):
    asked: list[str] = []
    win = _window(
        qtbot, tiny_model_dir, tmp_path, RayWorker(silent_address),
        lambda _parent, error: asked.append(error) or True,
    )  # fmt: skip
    ticks: list[float] = []
    timer = QTimer(win, interval=50)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    began = time.monotonic()
    win.start_worker()
    assert time.monotonic() - began < 0.5  # the connection check (1 s) runs elsewhere
    message = win.statusBar().currentMessage()
    assert message == f"connecting to the Ray cluster at {silent_address}…"
    job = win.generate()  # sent while connecting: it waits for a worker
    assert job is not None and job in win.session.jobs
    with qtbot.waitSignal(win.session.tree.version_finished, timeout=GENERATION_TIMEOUT_MS):
        qtbot.waitUntil(lambda: bool(asked), timeout=10_000)
        # The event loop ran all along: the timer fired through the whole wait.
        assert sum(began < t < began + 0.9 for t in ticks) >= 5
    assert asked == [f"Cannot reach a Ray cluster at {silent_address}: no answer within 1 s."]
    assert isinstance(win.session.client, LocalWorker) and win.session.model.loaded
    assert job not in win.session.jobs  # the waiting job ran in-process
    win.close()
    assert not win.session.client.is_running


def test_declining_the_fallback_fails_the_waiting_jobs_and_says_why(
    qtbot, tiny_model_dir, tmp_path
):
    win = _window(qtbot, tiny_model_dir, tmp_path, RayWorker(UNREACHABLE), lambda *_: False)
    win.start_worker()
    job = win.generate()
    with qtbot.waitSignal(
        win.session.message_handled,
        timeout=10_000,
        check_params_cb=lambda m: isinstance(m, JobFailed),
    ) as failed:
        pass
    assert failed.args[0].job_id == job and "Cannot reach a Ray cluster" in failed.args[0].error
    assert win.statusBar().currentMessage().startswith("No worker: Cannot reach a Ray cluster")
    assert isinstance(win.session.client, RayWorker) and not win.session.client.is_running
    assert not win.session.jobs
    win.close()


def test_a_new_backend_applies_without_a_restart(qtbot, tiny_model_dir, tmp_path):
    asked: list[str] = []
    first = LocalWorker()
    win = _window(
        qtbot, tiny_model_dir, tmp_path, first, lambda _p, error: asked.append(error) or False
    )
    with qtbot.waitSignal(
        win.session.message_handled,
        timeout=GENERATION_TIMEOUT_MS,
        check_params_cb=lambda m: isinstance(m, ModelLoaded),
    ):
        win.start_worker()
    win.settings.setValue(BACKEND_KEY, "ray")
    win.settings.setValue(ADDRESS_KEY, UNREACHABLE)
    win.backend.follow_settings()
    qtbot.waitUntil(lambda: bool(asked), timeout=10_000)
    assert isinstance(win.session.client, RayWorker)
    assert not first.is_running  # the replaced worker was stopped (off the UI thread)
    win.close()


def test_a_new_backend_waits_for_the_jobs_in_flight(qtbot, tiny_model_dir, tmp_path):
    win = _window(qtbot, tiny_model_dir, tmp_path, LocalWorker(), lambda *_: False)
    with qtbot.waitSignal(
        win.session.message_handled,
        timeout=GENERATION_TIMEOUT_MS,
        check_params_cb=lambda m: isinstance(m, ModelLoaded),
    ):
        win.start_worker()
    first = win.session.client
    with qtbot.waitSignal(win.session.tree.version_finished, timeout=GENERATION_TIMEOUT_MS):
        assert win.generate() is not None
        win.settings.setValue(BACKEND_KEY, "ray")
        win.settings.setValue(ADDRESS_KEY, UNREACHABLE)
        win.backend.follow_settings()
        assert win.session.client is first
        assert win.statusBar().currentMessage() == (
            "The new backend applies once the queue is empty."
        )
    qtbot.waitUntil(lambda: isinstance(win.session.client, RayWorker), timeout=10_000)
    win.close()
