"""Quitting never aborts the process, even while the worker is inside a call it cannot
interrupt (a model load busy in torch's native threads)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BUSY_APP = textwrap.dedent(
    """
    import sys, time
    import studio.workers.local as local

    def busy_load(ref):  # torch busy in its own native threads, like a real model load
        import torch
        torch.set_num_threads(2)
        a = torch.randn(1200, 1200)
        end = time.time() + 60
        while time.time() < end:
            a = (a @ a).clamp(-1, 1)
        raise RuntimeError("never loads")

    defaults = local.LocalWorker.__init__.__defaults__
    local.LocalWorker.__init__.__defaults__ = (busy_load, *defaults[1:])
    from PySide6.QtCore import QTimer
    from studio.ui.main_window import MainWindow

    start = MainWindow.start_worker
    def start_then_quit(self):
        start(self)
        QTimer.singleShot(1500, self.close)  # the user quits while the model loads
    MainWindow.start_worker = start_then_quit
    from studio.app import main
    sys.exit(main([]))
    """
)


def test_quitting_while_the_worker_is_busy_exits_cleanly(tmp_path):
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "NOISE_STUDIO_RECOVERY_DIR": str(tmp_path / "recovery"),
    }
    done = subprocess.run(
        [sys.executable, "-c", BUSY_APP],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-800:]
    assert "terminate called" not in done.stderr
    said = done.stdout + done.stderr
    assert "still busy at exit (10 s after quit)" in said
    assert "loading a model" not in said, "the window cannot know what the worker was doing"
