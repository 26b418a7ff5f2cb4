"""Where the window's jobs run: in this process, or on a Ray cluster (Generate ▸ Backend…).

The choice and the cluster's address live in QSettings and apply when the studio
starts its worker. A cluster that cannot be reached is one message offering to run
in this process instead; nothing else about the window depends on the backend.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings
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


def start_session(
    session: Session,
    folders: tuple[str, ...],
    parent: QWidget | None = None,
    ask: Callable[[QWidget | None, str], bool] = ask_to_fall_back,
) -> bool:
    """Start ``session``'s worker; when its cluster cannot be reached, offer the in-process
    worker (``ask``). False when no worker runs."""
    from studio.workers.ray_client import ClusterError

    try:
        session.start(folders)
        return True
    except ClusterError as exc:
        if not ask(parent, str(exc)):
            session.status.emit(f"No worker: {exc}", 0)
            return False
    from studio.workers.local import LocalWorker

    session.replace_client(LocalWorker())
    session.start(folders)
    return True


class BackendDialog(QDialog):
    """Choose the backend and the cluster's address; stored for the next start."""

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
        form.addRow(QLabel("Applies when the studio next starts."))
        form.addRow(buttons)
        self.kind.currentIndexChanged.connect(self._follow_kind)
        self._follow_kind()

    def _follow_kind(self) -> None:
        self.address.setEnabled(self.kind.currentData() == "ray")

    def accept(self) -> None:
        self._settings.setValue(BACKEND_KEY, self.kind.currentData())
        self._settings.setValue(ADDRESS_KEY, self.address.text().strip())
        super().accept()


def place_backend_action(menu: QMenu, settings: QSettings, parent: QWidget) -> QAction:
    """Generate ▸ Backend…, opening :class:`BackendDialog`."""
    action = menu.addAction("&Backend…")
    action.triggered.connect(lambda: BackendDialog(settings, parent).exec())
    return action
