"""Counting the compositor's work, and on which thread it ran: blend passes and premultiplied layers.

Bands run on the thread that asked for them (the band pool is switched off), so
work done for the UI shows as the main thread's and work done ahead of an edit
as the background thread's. On the small canvases of the tests a composite is
one band, so one blend pass is one layer blended.
"""

from __future__ import annotations

import threading
from collections import Counter

from studio.document import compositing


class CompositingWork:
    """Counts ``blend_into`` and ``premultiply`` calls by thread ("ui" or "background")."""

    def __init__(self, monkeypatch) -> None:
        self.blends: Counter[str] = Counter()
        self.premultiplied: Counter[str] = Counter()
        blend_into, premultiply = compositing.blend_into, compositing.premultiply

        def counted_blend(src, dst, mode):
            self.blends[_thread()] += 1
            return blend_into(src, dst, mode)

        def counted_premultiply(rgba, opacity=1.0, out=None):
            self.premultiplied[_thread()] += 1
            return premultiply(rgba, opacity, out)

        monkeypatch.setattr(compositing, "_band_pool", lambda: None)
        monkeypatch.setattr(compositing, "blend_into", counted_blend)
        monkeypatch.setattr(compositing, "premultiply", counted_premultiply)

    def on_ui(self) -> tuple[int, int]:
        """(blend passes, layers premultiplied) on the UI thread since the last reset."""
        return self.blends["ui"], self.premultiplied["ui"]

    def reset(self) -> None:
        self.blends.clear()
        self.premultiplied.clear()


def _thread() -> str:
    return "ui" if threading.current_thread() is threading.main_thread() else "background"
