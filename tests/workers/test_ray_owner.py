"""A cluster the studio starts on this machine outlives the thread that connected.

Ray has Linux kill the processes it starts (GCS, raylet) when their parent *thread*
ends. The window connects on a short-lived thread, so the client must start Ray on
a thread that lives as long as the process. This runs in a fresh process: the rest
of the suite's cluster is started by the tests themselves, from the main thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import threading, time
    from studio.engine.recipe import Recipe
    from studio.protocol import Generate, JobFailed, JobFinished, LoadModel
    from studio.workers.ray_client import RayWorker

    client = RayWorker(workers=1)
    ended = []
    client.listen(lambda m: ended.append(m) if isinstance(m, (JobFinished, JobFailed)) else None)
    connecting = threading.Thread(target=client.connect)  # as the window does
    connecting.start()
    connecting.join()
    time.sleep(2)  # the connecting thread has ended; the cluster must still be there
    client.start()
    client.send(LoadModel("bundled"))
    client.send(Generate(1, "v1", Recipe("a red circle on grass", seed=7, steps=4)))
    deadline = time.monotonic() + 90
    while not ended and time.monotonic() < deadline:
        time.sleep(0.1)
    client.stop()
    print("RESULT", type(ended[0]).__name__ if ended else "nothing")
    """
)


def test_a_cluster_started_from_a_connecting_thread_runs_jobs_after_it_ends() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert "RESULT JobFinished" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]
