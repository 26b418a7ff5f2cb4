"""The Qt binding we install survives what a long session does: many signal emits."""

from __future__ import annotations

import subprocess
import sys
import textwrap

EMITS = textwrap.dedent(
    """
    from PySide6.QtCore import QCoreApplication, QObject, Signal
    app = QCoreApplication([])
    class Source(QObject):
        step = Signal(str)
    source = Source()
    source.step.connect(lambda text: None)
    for _ in range(50_000):  # a long session emits far more than this
        source.step.emit("x")
    print("survived")
    """
)


def test_fifty_thousand_signal_emits_do_not_abort_the_process():
    done = subprocess.run(
        [sys.executable, "-c", EMITS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "survived" in done.stdout, done.stderr[-500:]
