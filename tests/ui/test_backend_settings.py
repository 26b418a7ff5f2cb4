"""The window's backend setting: stored in QSettings, and a cluster that cannot be
reached offers the in-process worker in one message."""

from __future__ import annotations

from PySide6.QtCore import QSettings

from studio.protocol import ModelLoaded
from studio.session import Session
from studio.ui.backend_settings import BackendDialog, backend_choice, start_session, worker_client
from studio.workers.local import LocalWorker
from studio.workers.ray_client import RayWorker

UNREACHABLE = "127.0.0.1:1"


def _settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


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


def test_an_unreachable_cluster_falls_back_to_in_process_when_the_user_agrees(
    qtbot, tiny_model_dir
):
    session = Session(RayWorker(UNREACHABLE), str(tiny_model_dir))
    asked: list[str] = []
    with qtbot.waitSignal(
        session.message_handled,
        timeout=60_000,
        check_params_cb=lambda m: isinstance(m, ModelLoaded),
    ):
        assert start_session(session, (), ask=lambda _parent, error: asked.append(error) or True)
    assert len(asked) == 1 and "\n" not in asked[0] and "Ray" in asked[0]
    assert isinstance(session.client, LocalWorker) and session.client.is_running
    assert session.model.loaded
    assert session.shutdown()


def test_declining_the_fallback_leaves_no_worker_and_says_why(qtbot, tiny_model_dir):
    session = Session(RayWorker(UNREACHABLE), str(tiny_model_dir))
    with qtbot.waitSignal(session.status, timeout=5_000) as status:
        assert not start_session(session, (), ask=lambda _parent, _error: False)
    assert status.args[0].startswith("No worker: ")
    assert isinstance(session.client, RayWorker) and not session.client.is_running
    assert session.shutdown()
