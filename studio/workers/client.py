"""The interface every worker client offers the session.

A client takes protocol requests (:mod:`studio.protocol`) and answers with
protocol messages, delivered to one listener. The listener may be called from
any thread (the worker's own, or the caller's for a job cancelled before it
ran); the Qt adapter in :mod:`studio.workers.qt` brings each message to the UI
thread. The in-process thread (:mod:`studio.workers.local`) is the first
implementation and the Ray actor pool (:mod:`studio.workers.ray_client`) the
second; neither the session nor the UI changes for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from studio.protocol import Message, Request

Listener = Callable[[Message], None]


class WorkerClient(ABC):
    """Runs jobs somewhere else than the UI thread and reports on them."""

    batches: bool = False
    """Whether it runs a GenerateBatch's members through the UNet together; a client that
    does not runs them as plain jobs, so the session sends them at batch 1 instead (a
    lone run padded to a batch would cost the batch's work)."""

    remote: str | None = None
    """Where the jobs run when that takes reaching ("the Ray cluster at HOST:6379"); None
    for this process. A remote client's :meth:`connect` may take seconds."""

    def __init__(self) -> None:
        self._listener: Listener = _drop

    def listen(self, listener: Listener) -> None:
        """Send every message to ``listener`` from now on (one listener; the last one wins)."""
        self._listener = listener

    def post(self, message: Message) -> None:
        self._listener(message)

    def connect(self) -> None:
        """Reach where the jobs run (blocking: the window calls it off the UI thread);
        raises the client's one-sentence error when it cannot. :meth:`start` connects
        when this was not called. Nothing to do in this process."""
        return None

    def take_waiting(self) -> list[Request]:
        """The requests sent to a client that never started, removed from it (for another
        client to serve, or to refuse). None wait in this process's client."""
        return []

    @abstractmethod
    def start(self) -> None:
        """Begin serving requests; requests sent before this wait for it."""

    @abstractmethod
    def send(self, request: Request) -> None:
        """Queue one request. Thread-safe, never blocks on work."""

    @abstractmethod
    def stop(self, timeout: float = 30.0) -> bool:
        """Cancel everything and end; False if the worker had not ended within ``timeout``."""

    @property
    @abstractmethod
    def is_running(self) -> bool: ...


def _drop(_message: Message) -> None:
    pass
