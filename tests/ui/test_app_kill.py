"""SIGKILL the studio app itself (window, worker, project) while it generates, branches and undoes.

Each round starts ``killed_app.py`` (the window offscreen on the tiny model),
which restores the untitled work the previous round left, lets it work for a
random 1.5-6 s and kills it. After every kill the project file must pass
SQLite's integrity and foreign-key checks and every check opening makes, and
hold every step the app was told had been committed.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.document import recovery
from studio.document.store import ProjectStore, check_project_file

ROUNDS = 4
ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).with_name("killed_app.py")
STARTUP_TIMEOUT_S = 120

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]


def _read_log(log: Path) -> tuple[set[tuple[str, int]], set[str]]:
    """The steps the app was told were committed, and the kinds of action it took."""
    steps: set[tuple[str, int]] = set()
    actions: set[str] = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        if line.startswith("S "):
            _, version_id, index = line.split()
            steps.add((version_id, int(index)))
        elif line.startswith("A "):
            actions.add(line[2:])
    return steps, actions


def _file_steps(path: Path) -> tuple[set[tuple[str, int]], set[str], int]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        steps = {(v, i) for v, i in conn.execute("SELECT version_id, idx FROM steps")}
        versions = {r[0] for r in conn.execute("SELECT id FROM versions")}
        live = conn.execute("SELECT count(*) FROM versions WHERE deleted = 0").fetchone()[0]
    finally:
        conn.close()
    return steps, versions, live


def test_killing_the_app_while_it_works_loses_nothing_committed(tmp_path, tiny_model_dir):
    rng = random.Random(20261201)
    folder = tmp_path / "recovery"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        recovery.RECOVERY_DIR_ENV: str(folder),
        "QT_QPA_PLATFORM": "offscreen",
        "NOISE_STUDIO_TORCH_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    project: Path | None = None
    everything: set[tuple[str, int]] = set()
    actions: set[str] = set()
    for round_no in range(ROUNDS):
        log = tmp_path / f"committed-{round_no}.log"
        app = subprocess.Popen(
            [
                sys.executable,
                str(APP),
                str(tiny_model_dir),
                str(tmp_path / "settings.ini"),
                str(log),
                str(round_no),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        try:
            line = app.stdout.readline().decode().strip()
            assert line.startswith("ready "), app.stderr.read().decode()[-3000:]
            opened = Path(line.removeprefix("ready "))
            if project is not None:
                assert opened == project, "the killed round's work was restored"
            project = opened
            time.sleep(rng.uniform(1.5, 6.0))
        finally:
            app.send_signal(signal.SIGKILL)
            app.wait(30)
            for stream in (app.stdout, app.stderr):
                stream.close()
        assert app.returncode == -signal.SIGKILL

        committed, done = _read_log(log)
        actions |= done
        steps, versions, live = _file_steps(project)
        assert committed <= steps, f"round {round_no}: committed steps are missing"
        # earlier rounds' steps go only with versions that were deleted (purged on restore)
        earlier = {(v, i) for v, i in everything if v in versions}
        assert earlier <= steps
        everything |= committed
        check_project_file(project)  # every check opening makes passes
        print(f"round {round_no}: {len(committed)} steps committed, {live} live versions")

    assert len(everything) > ROUNDS * 6, "the app got real work done between kills"
    assert {"generate", "branch", "undo"} <= actions
    with ProjectStore.open(project) as store:
        assert store.integrity_check() == "ok"
        assert any(v.parent_id is not None for v in store.versions()), "branches were stored"
