"""Where the window's jobs run: in this process, or on a Ray cluster (Generate ▸ Backend…).

The choice and the cluster's address live in QSettings. :class:`BackendSwitch` starts
the chosen worker after the window is up, connecting to a cluster off the UI thread,
and puts in a newly chosen one without a restart. A cluster that cannot be reached is
one message offering to run in this process instead; nothing else about the window
depends on the backend.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QWidget,
)

from studio.protocol import Generate, JobFailed, QueueChanged, Resume, Score
from studio.session import Session
from studio.workers.client import WorkerClient

BACKEND_KEY = "backend/kind"
ADDRESS_KEY = "backend/ray_address"
BACKENDS = (("local", "In this process"), ("ray", "Ray cluster"))
ADDRESS_HINT = "local, auto, HOST:6379 or ray://HOST:10001"


def backend_choice(settings: QSettings) -> tuple[str, str]:
    """(backend, Ray address) as stored; ("local", "") when nothing valid is."""
    kind = str(settings.value(BACKEND_KEY, "local"))
    address = str(settings.value(ADDRESS_KEY, "") or "")
    return (kind if kind in dict(BACKENDS) else "local"), address


def worker_client(settings: QSettings) -> WorkerClient:
    """The client the stored choice names (Ray connects only when started)."""
    kind, address = backend_choice(settings)
    if kind == "ray":
        from studio.workers.ray_client import RayWorker

        return RayWorker(address or None)
    from studio.workers.local import LocalWorker

    return LocalWorker()


def ask_to_fall_back(parent: QWidget | None, error: str) -> bool:
    answer = QMessageBox.question(
        parent,
        "Cluster unavailable",
        f"{error}\n\nRun jobs in this process instead?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.Yes,
    )
    return answer == QMessageBox.StandardButton.Yes


class BackendSwitch(QObject):
    """Starts the session's worker, and puts in the one a changed setting names, without
    ever blocking the UI thread.

    A remote client (:attr:`WorkerClient.remote`) connects on a plain thread, which also
    stops the client it replaces; the result comes back through a queued signal. The
    window stays usable meanwhile: the status bar says where it is connecting, and jobs
    sent wait in the new client. When the cluster cannot be reached, ``ask`` offers the
    in-process worker: yes carries the waiting jobs over to it, no fails them with the
    reason. A setting changed while jobs are in flight applies once none are."""

    connected = Signal(object, object)
    """(client, error or None), from the connecting thread."""

    def __init__(
        self,
        session: Session,
        settings: QSettings,
        folders: Callable[[], tuple[str, ...]],
        parent: QWidget | None = None,
        ask: Callable[[QWidget | None, str], bool] = ask_to_fall_back,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.ask = ask
        self._settings = settings
        self._folders = folders
        self._parent = parent
        self._choice = backend_choice(settings)
        self._started = False
        self._pending = False
        self.connected.connect(self._on_connected, Qt.ConnectionType.QueuedConnection)
        session.message_handled.connect(self._apply_when_idle)

    def start(self) -> None:
        """Start the session's own client (connecting in the background when remote)."""
        self._started = True
        self._bring_in(self.session.client, retired=None)

    def follow_settings(self) -> None:
        """Switch to the backend the settings now name: at once when no job is in flight,
        else when the last one ends."""
        if not self._started or backend_choice(self._settings) == self._choice:
            return
        if self.session.jobs or self.session.score_jobs:
            self._pending = True
            self.session.status.emit("The new backend applies once the queue is empty.", 8000)
            return
        self._pending = False
        self._choice = backend_choice(self._settings)
        self._bring_in(worker_client(self._settings), retired=self.session.client)

    def _apply_when_idle(self, message: object) -> None:
        if self._pending and isinstance(message, QueueChanged) and not message.jobs:
            self.follow_settings()

    def _bring_in(self, client: WorkerClient, retired: WorkerClient | None) -> None:
        session = self.session
        if client is not session.client:
            session.replace_client(client)
        if client.remote is None and retired is None:
            session.start(self._folders())
            return
        if client.remote is not None:
            session.status.emit(f"connecting to {client.remote}…", 0)
        threading.Thread(
            target=self._connect, args=(client, retired), name="backend-connect", daemon=True
        ).start()

    def _connect(self, client: WorkerClient, retired: WorkerClient | None) -> None:
        """The connecting thread: stop the client replaced, then reach the new one."""
        from studio.workers.ray_client import ClusterError

        if retired is not None:
            retired.stop(timeout=10.0)
        error = None
        try:
            client.connect()
        except ClusterError as exc:
            error = str(exc)
        with contextlib.suppress(RuntimeError):  # the window closed meanwhile
            self.connected.emit(client, error)

    def _on_connected(self, client: WorkerClient, error: str | None) -> None:
        session = self.session
        if client is not session.client or session.closing:
            return  # replaced again, or closing, while it connected
        if error is None:
            session.start(self._folders())
            if client.remote is not None:
                session.status.emit(f"Jobs run on {client.remote}.", 5000)
            return
        waiting = client.take_waiting()
        if not self.ask(self._parent, error):
            for request in waiting:
                if isinstance(request, (Generate, Resume, Score)):
                    session.handle(JobFailed(request.job_id, request.version_id, error, 0))
            session.status.emit(f"No worker: {error}", 0)
            return
        from studio.workers.local import LocalWorker

        self._choice = ("local", "")
        session.replace_client(LocalWorker())
        session.start(self._folders())
        for request in waiting:
            session.client.send(request)


class BackendDialog(QDialog):
    """Choose the backend and the cluster's address (stored in QSettings)."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Backend")
        self._settings = settings
        kind, address = backend_choice(settings)
        self.kind = QComboBox()
        for key, label in BACKENDS:
            self.kind.addItem(label, key)
        self.kind.setCurrentIndex([k for k, _ in BACKENDS].index(kind))
        self.address = QLineEdit(address)
        self.address.setPlaceholderText(ADDRESS_HINT)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Run jobs", self.kind)
        form.addRow("Ray address", self.address)
        form.addRow(QLabel("Applies at once, or when the running jobs have ended."))
        form.addRow(buttons)
        self.kind.currentIndexChanged.connect(self._follow_kind)
        self._follow_kind()

    def _follow_kind(self) -> None:
        self.address.setEnabled(self.kind.currentData() == "ray")

    def accept(self) -> None:
        self._settings.setValue(BACKEND_KEY, self.kind.currentData())
        self._settings.setValue(ADDRESS_KEY, self.address.text().strip())
        super().accept()


def place_backend_action(
    menu: QMenu, settings: QSettings, switch: BackendSwitch, parent: QWidget
) -> QAction:
    """Generate ▸ Backend…, opening :class:`BackendDialog`; an accepted choice applies."""
    action = menu.addAction("&Backend…")

    def choose() -> None:
        if BackendDialog(settings, parent).exec() == QDialog.DialogCode.Accepted:
            switch.follow_settings()

    action.triggered.connect(choose)
    return action
