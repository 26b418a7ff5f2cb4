"""Full VAE decodes of a version's steps, asked of the worker one at a time, for exports.

Decode is latest-wins on the worker, so a batch cannot be sent at once: the next
request goes out only when the previous one is answered, and a request that a
scrub's Decode replaced is sent again when that one is answered. Answers arrive
through ``session.message_handled`` on the UI thread; the session keeps them in
its decode cache too, so a scrub over the same steps afterwards is instant.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Signal

from studio.protocol import Decode, Decoded, DecodeFailed, DecodeKey, StepRecord
from studio.session import Session


def at_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` as uint8 RGB at ``size`` (width, height); stored previews may be smaller."""
    rgb = np.asarray(image)[..., :3]
    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.NEAREST))


class TrajectoryFrames(QObject):
    """Decodes ``steps`` (with their trajectory refs) of one view ("x0" or "xt") in order.

    ``progress(done, total)`` follows each answer; ``finished`` fires once every
    frame is in :attr:`frames` (a failed decode keeps the step's stored preview,
    at image size) or after :meth:`cancel`.
    """

    progress = Signal(int, int)
    finished = Signal()

    def __init__(
        self,
        session: Session,
        refs: list[tuple[str, int]],
        steps: list[StepRecord],
        view: str,
        size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.session = session
        self.steps = steps
        self.view = view
        self.size = size
        self.keys: list[DecodeKey] = [(owner, index, view) for owner, index in refs]
        self.frames: list[np.ndarray | None] = [None] * len(steps)
        self.failures = 0
        self.cancelled = False
        self._next = 0
        self._listening = False

    @property
    def done(self) -> bool:
        return self.cancelled or self._next >= len(self.steps)

    def start(self) -> None:
        self.session.message_handled.connect(self._on_message)
        self._listening = True
        self._send_or_finish()

    def cancel(self) -> None:
        if not self.done:
            self.cancelled = True
            self._finish()

    def _send_or_finish(self) -> None:
        if self._next >= len(self.steps):
            self._finish()
            return
        step = self.steps[self._next]
        sigma = step.sigma if self.view == "xt" else None
        self.session.client.send(Decode(self.keys[self._next], step.checkpoint, self.view, sigma))

    def _on_message(self, message: object) -> None:
        if self.done or not isinstance(message, Decoded | DecodeFailed):
            return
        if message.key != self.keys[self._next]:
            # Someone else's decode: ours may have been replaced while it waited.
            self._send_or_finish()
            return
        step = self.steps[self._next]
        if isinstance(message, Decoded):
            self.frames[self._next] = at_size(message.image, self.size)
        else:
            self.failures += 1
            self.frames[self._next] = at_size(getattr(step, f"preview_{self.view}"), self.size)
        self._next += 1
        self.progress.emit(self._next, len(self.steps))
        self._send_or_finish()

    def _finish(self) -> None:
        if self._listening:
            self._listening = False
            self.session.message_handled.disconnect(self._on_message)
        self.finished.emit()
