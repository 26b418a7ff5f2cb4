"""The job queue: the running generation and the ones waiting behind it."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QMenu, QWidget

from studio.protocol import JobInfo


class QueueView(QListWidget):
    """Lists the worker's jobs; the context menu cancels one. A job asked to cancel says
    "cancelling…" until the worker drops it."""

    cancel_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self._jobs: tuple[JobInfo, ...] = ()
        self._cancelling: set[int] = set()
        self.set_jobs(())

    def mark_cancelling(self, job_id: int | None) -> None:
        """Show a job (None: the running one) as cancelling, at once."""
        if job_id is None:
            job_id = next((job.job_id for job in self._jobs if job.running), None)
        if job_id is not None:
            self._cancelling.add(job_id)
            self.set_jobs(self._jobs)

    def set_jobs(self, jobs: tuple[JobInfo, ...]) -> None:
        self._jobs = tuple(jobs)
        self._cancelling &= {job.job_id for job in jobs}
        self.clear()
        for job in jobs:
            mark = "▶ running" if job.running else "… waiting"
            if job.job_id in self._cancelling:
                mark = "■ cancelling…"
            item = QListWidgetItem(f"{mark}  #{job.job_id}  {job.label}")
            item.setData(Qt.ItemDataRole.UserRole, job.job_id)
            self.addItem(item)
        if not jobs:
            item = QListWidgetItem("No jobs.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.addItem(item)

    def _menu(self, point: QPoint) -> None:
        item = self.itemAt(point)
        job_id = item.data(Qt.ItemDataRole.UserRole) if item else None
        if job_id is None:
            return
        menu = QMenu(self)
        cancel = menu.addAction("Cancel this job")
        if menu.exec(self.viewport().mapToGlobal(point)) is cancel:
            self.cancel_requested.emit(job_id)
