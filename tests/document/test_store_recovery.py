"""Untitled projects live in the recovery folder; a crash leaves them to be offered back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from studio.document import recovery
from studio.document.store import ProjectError, ProjectStore

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

_APP = textwrap.dedent(
    """
    import sys
    from studio.document import recovery
    store, lock = recovery.create_untitled()
    for n in range(int(sys.argv[1])):
        store.add_version(recipe_json='{"prompt": "p"}', name=f"v{n}").result()
    print(store.path, flush=True)
    sys.stdin.read()  # keep working until killed
    """
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "recovery"
    monkeypatch.setenv(recovery.RECOVERY_DIR_ENV, str(folder))
    return folder


class _App:
    """Another app process with an untitled project open."""

    def __init__(self, folder: Path, versions: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), recovery.RECOVERY_DIR_ENV: str(folder)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _APP, str(versions)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        line = self.proc.stdout.readline().decode().strip()
        assert line, self.proc.stderr.read().decode()
        self.path = Path(line)

    def crash(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_a_crashed_untitled_project_is_offered_and_restored(folder: Path) -> None:
    app = _App(folder, versions=2)
    assert recovery.recoverable_projects() == [], "a running app's project is not offered"
    app.crash()

    (found,) = recovery.recoverable_projects()
    assert found.path == app.path and found.version_count == 2 and found.problem is None
    store, lock = recovery.claim(found.path)
    try:
        assert [v.name for v in store.versions()] == ["v0", "v1"]
        assert recovery.recoverable_projects() == [], "a claimed project is not offered twice"
        store.add_version(recipe_json="{}", name="after restore").result()
    finally:
        store.close()
    lock.release(remove_project=True)
    assert list(folder.iterdir()) == []


def test_an_empty_crashed_project_is_discarded_not_offered(folder: Path) -> None:
    app = _App(folder, versions=0)
    app.crash()
    assert recovery.recoverable_projects() == []
    assert list(folder.iterdir()) == []


def test_clean_exit_removes_the_untitled_project(folder: Path) -> None:
    store, lock = recovery.create_untitled()
    store.add_version(recipe_json="{}", name="v1").result()
    assert store.path.parent == folder and store.name.startswith("untitled-")
    store.close()
    lock.release(remove_project=True)
    assert list(folder.iterdir()) == []
    assert recovery.recoverable_projects() == []


def test_save_as_moves_untitled_work_to_a_real_file(folder: Path, tmp_path: Path) -> None:
    store, lock = recovery.create_untitled()
    v = store.add_version(recipe_json="{}", name="keeper").result()
    target = tmp_path / "mine.studio"
    store.save_as(target).result()
    store.close()
    lock.release(remove_project=True)
    assert list(folder.iterdir()) == []
    with ProjectStore.open(target) as reopened:
        assert reopened.version(v).name == "keeper"


def test_discard_and_claim_refuse_a_project_another_app_holds(folder: Path) -> None:
    app = _App(folder, versions=1)
    try:
        with pytest.raises(ProjectError):
            recovery.claim(app.path)
        with pytest.raises(ProjectError):
            recovery.discard(app.path)
        assert app.path.exists()
    finally:
        app.crash()
    recovery.discard(app.path)
    assert not app.path.exists()
    assert recovery.recoverable_projects() == []


def test_a_damaged_orphan_is_listed_with_its_problem(folder: Path) -> None:
    folder.mkdir()
    (folder / "untitled-broken.studio").write_bytes(b"not a database at all" * 10)
    (found,) = recovery.recoverable_projects()
    assert found.problem and "not a noise studio project" in found.problem.lower()


def test_a_lock_without_its_project_is_cleaned_up(folder: Path) -> None:
    folder.mkdir()
    (folder / "untitled-x.studio.lock").write_text("12345\n")
    assert recovery.recoverable_projects() == []
    assert list(folder.iterdir()) == []
