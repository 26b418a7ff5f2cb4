"""The status bar's permanent widgets: the model, the queue, and the running job's progress."""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar, QStatusBar, QTabBar

from studio.engine.recipe import BUNDLED_MODEL
from studio.protocol import ModelFailed, ModelLoaded, ModelLoading, QueueChanged
from studio.session import Progress, Session


class StatusWidgets:
    """Model label, queue count, progress bar and it/s · ETA, following the session."""

    def __init__(self, session: Session, bar: QStatusBar) -> None:
        self._session = session
        self.model_label = QLabel("loading model…")
        self.queue_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setFormat("%v / %m")
        self.progress.hide()
        self.speed_label = QLabel("")
        for widget in (self.speed_label, self.progress, self.queue_label, self.model_label):
            bar.addPermanentWidget(widget)
        session.message_handled.connect(self._on_message)
        session.progress_changed.connect(self._show_progress)
        session.status.connect(lambda text, ms: bar.showMessage(text, ms))

    def _on_message(self, message: object) -> None:
        model = self._session.model
        match message:
            case QueueChanged():
                waiting = sum(1 for job in message.jobs if not job.running)
                self.queue_label.setText(f"queue: {waiting} waiting" if waiting else "")
            case ModelLoading():
                self.model_label.setText("loading model…")
            case ModelLoaded():
                self.model_label.setText(f"{message.description} · {short_ref(message.ref)}")
            case ModelFailed() if model.held is None:
                self.model_label.setText("model failed to load")
            case ModelFailed():
                self.model_label.setText(f"{model.description} · {short_ref(model.ref)}")

    def _show_progress(self, progress: Progress | None) -> None:
        if progress is None:
            self.progress.hide()
            self.speed_label.setText("")
            return
        self.progress.setRange(0, progress.total)
        self.progress.setValue(progress.value)
        self.progress.show()
        if progress.rate > 0:
            eta = f"{progress.eta:.1f}" if progress.eta < 10 else f"{progress.eta:.0f}"
            self.speed_label.setText(f"{progress.rate:.1f} it/s · ETA {eta} s")


def short_ref(ref: str) -> str:
    return "noise-world" if ref == BUNDLED_MODEL else ref.rstrip("/").rsplit("/", 1)[-1]


FLASH_MS = 1500


def flash_tab(window: QMainWindow, title: str) -> list[tuple[QTabBar, int]]:
    """Tint the dock tab named ``title`` for a moment instead of switching to it."""
    flashed = []
    for bar in window.findChildren(QTabBar):
        for index in range(bar.count()):
            if bar.tabText(index) == title and bar.currentIndex() != index:
                before = bar.tabTextColor(index)
                bar.setTabTextColor(index, QColor("#d9480f"))
                QTimer.singleShot(FLASH_MS, lambda b=bar, i=index, c=before: _unflash(b, i, c))
                flashed.append((bar, index))
    return flashed


def _unflash(bar: QTabBar, index: int, color: QColor) -> None:
    if shiboken6.isValid(bar) and index < bar.count():  # the window may have closed since
        bar.setTabTextColor(index, color)
