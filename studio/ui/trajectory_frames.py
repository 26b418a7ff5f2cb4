"""Full VAE decodes of a version's steps, for exports, asked of the worker in one request.

One :class:`~studio.protocol.DecodeSteps` carries every step's checkpoint bytes; the worker
decodes them a VAE batch at a time on its torch thread (between the steps of a running
job, beside the scrub's latest-wins Decode) and answers each batch with a StepsDecoded,
which arrives through ``session.message_handled`` on the UI thread.
"""

from __future__ import annotations

import itertools

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Signal

from studio.protocol import CancelDecodeSteps, DecodeSteps, StepRecord, StepsDecoded
from studio.session import Session


def at_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` as uint8 RGB at ``size`` (width, height); stored previews may be smaller."""
    rgb = np.asarray(image)[..., :3]
    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.NEAREST))


class TrajectoryFrames(QObject):
    """Decodes ``steps`` of one view ("x0" or "xt") in order.

    ``progress(done, total)`` follows each batch; ``finished`` fires once every frame is
    in :attr:`frames` (a failed decode keeps the step's stored preview, at image size)
    or after :meth:`cancel`, which also stops the worker's decoding.
    """

    progress = Signal(int, int)
    finished = Signal()

    def __init__(
        self,
        session: Session,
        steps: list[StepRecord],
        view: str,
        size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.session = session
        self.steps = steps
        self.view = view
        self.size = size
        self.key = f"trajectory-{next(_requests)}"
        self.frames: list[np.ndarray | None] = [None] * len(steps)
        self.failures = 0
        self.cancelled = False
        self._done = 0
        self._listening = False

    @property
    def done(self) -> bool:
        return self.cancelled or self._done >= len(self.steps)

    def start(self) -> None:
        if not self.steps:
            self._finish()
            return
        self.session.message_handled.connect(self._on_message)
        self._listening = True
        sigmas = tuple(step.sigma if self.view == "xt" else None for step in self.steps)
        checkpoints = tuple(step.checkpoint for step in self.steps)
        self.session.client.send(DecodeSteps(self.key, checkpoints, self.view, sigmas))

    def cancel(self) -> None:
        if not self.done:
            self.cancelled = True
            self.session.client.send(CancelDecodeSteps(self.key))
            self._finish()

    def _on_message(self, message: object) -> None:
        if self.done or not isinstance(message, StepsDecoded) or message.key != self.key:
            return
        failed = set(message.failed)
        for position, image in enumerate(message.images, start=message.start):
            if position in failed:
                self._keep_preview(position)
            else:
                self.frames[position] = at_size(image, self.size)
        if message.error or message.cancelled:  # the rest keep their stored previews
            for position in range(message.start + len(message.images), len(self.steps)):
                self._keep_preview(position)
            self._done = len(self.steps)
        else:
            self._done = message.done
        self.progress.emit(self._done, len(self.steps))
        if self.done:
            self._finish()

    def _keep_preview(self, position: int) -> None:
        self.failures += 1
        step = self.steps[position]
        self.frames[position] = at_size(getattr(step, f"preview_{self.view}"), self.size)

    def _finish(self) -> None:
        if self._listening:
            self._listening = False
            self.session.message_handled.disconnect(self._on_message)
        self.finished.emit()


_requests = itertools.count(1)
