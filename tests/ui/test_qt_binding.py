"""The Qt binding we install survives what a long session does: many signal emits.

PySide6 6.12.0 on CPython 3.11 drops a reference to ``True`` on every Python
``emit()``; with torch loaded ``True`` has about 10,000 references, so the app
aborted ("Fatal Python error: bool_dealloc") after some fifty generations.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

EMITS = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QCoreApplication, QObject, Signal
    app = QCoreApplication([])
    class Source(QObject):
        step = Signal(str)
        done = Signal()
    source = Source()
    source.step.connect(lambda text: None)
    source.done.connect(lambda: None)
    before = sys.getrefcount(True)
    for _ in range(2_000):
        source.step.emit("x")
        source.done.emit()
    print(before - sys.getrefcount(True))
    """
)


def test_signal_emits_keep_every_reference_they_borrow():
    done = subprocess.run(
        [sys.executable, "-c", EMITS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert int(done.stdout.strip()) == 0, "the Qt binding leaks a reference per emit"
