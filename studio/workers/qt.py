"""The Qt adapter: a worker client's messages, delivered on the UI thread.

The only Qt in the worker package. Messages are always queued, even when the
client posts from the UI thread itself (a waiting job cancelled at once), so
the session never handles a message inside one of its own calls.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal

from studio.protocol import Message
from studio.workers.client import WorkerClient


class MessageChannel(QObject):
    """Carries ``client``'s messages to ``received`` on the thread this object lives in."""

    received = Signal(object)
    _posted = Signal(object)

    def __init__(self, client: WorkerClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._posted.connect(self.received, Qt.ConnectionType.QueuedConnection)
        client.listen(self._post)

    def _post(self, message: Message) -> None:
        self._posted.emit(message)
