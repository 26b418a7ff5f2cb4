"""One model actor of a Ray cluster: a :class:`~studio.workers.local.LocalWorker` in a Ray process.

The actor runs the very worker the window runs in-process, so a job on the cluster
is the same code, the same model checks (:mod:`studio.engine.model_files`, on the
worker, before any library opens a file) and the same steps as a job at home. Its
methods only forward: requests go in through :meth:`ModelHost.send` and every
message the worker posts comes back through one streaming generator,
:meth:`ModelHost.messages`, in the order posted, as the job protocol's wire form
(:func:`~studio.protocol.to_wire`), each step packed in one payload
(:func:`~studio.protocol.pack_step`). QueueChanged stays here: the client keeps the
queue the user sees.

Threading contract: the LocalWorker's own thread is the one thread of this process
that touches torch. The actor's methods run in two concurrency groups of one thread
each, ``requests`` (send, stop: applied in the order sent) and ``stream``
(messages), so a Cancel reaches the worker while a job streams.

Ray is not imported here; :func:`model_actor_class` makes the remote class when a
Ray client first needs it.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from typing import Any

from studio.protocol import QueueChanged, StepMade, from_wire, pack_step, to_wire
from studio.workers.local import LocalWorker

_END = object()


class ModelHost:
    """Holds one LocalWorker (and so one loaded model at a time) inside a Ray actor.

    ``torch_threads`` is the worker's intra-op thread count; it is part of
    exactness on CPU, so a job matches an in-process run with the same count."""

    def __init__(self, torch_threads: int) -> None:
        from studio.engine.models import THREADS_ENV

        os.environ[THREADS_ENV] = str(torch_threads)
        os.environ["OMP_NUM_THREADS"] = str(torch_threads)  # before the worker imports torch
        self._messages: queue.Queue[Any] = queue.Queue()
        self._worker = LocalWorker()
        self._worker.listen(self._messages.put)
        self._worker.start()

    def pid(self) -> int:
        """The actor's process id (what a fault test kills)."""
        return os.getpid()

    def node(self) -> str:
        """The cluster node this actor runs on, for messages about missing files."""
        import socket

        return socket.gethostname()

    def send(self, wire_request: Any) -> None:
        self._worker.send(from_wire(wire_request))

    def messages(self) -> Iterator[Any]:
        """Every message the worker posts, in order, until :meth:`stop`."""
        while True:
            message = self._messages.get()
            if message is _END:
                return
            if isinstance(message, StepMade):
                yield pack_step(message)
            elif not isinstance(message, QueueChanged):
                yield to_wire(message)

    def stop(self) -> bool:
        stopped = self._worker.stop(timeout=10.0)
        self._messages.put(_END)
        return stopped


_remote_class: Any = None


def model_actor_class() -> Any:
    """``ModelHost`` as a Ray actor class (made once; imports Ray)."""
    global _remote_class
    if _remote_class is not None:
        return _remote_class
    import ray

    @ray.remote(concurrency_groups={"requests": 1, "stream": 1}, max_restarts=0)
    class ModelActor(ModelHost):
        @ray.method(concurrency_group="requests")
        def send(self, wire_request: Any) -> None:
            super().send(wire_request)

        @ray.method(concurrency_group="requests")
        def stop(self) -> bool:
            return super().stop()

        @ray.method(concurrency_group="stream", num_returns="streaming")
        def messages(self) -> Iterator[Any]:
            yield from super().messages()

    _remote_class = ModelActor
    return _remote_class
