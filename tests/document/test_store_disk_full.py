"""Disk full: a clear error, a consistent file, and the unsaved edits kept for Save As."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from studio.document.store import ProjectError, ProjectErrorReason, ProjectStore
from studio.protocol import StepRecord

RECIPE = '{"prompt": "p"}'


def _step(store: ProjectStore, version: str, index: int, size: int = 40_000):
    pixel = np.zeros((1, 1, 3), np.uint8)
    return store.append_step(
        version, StepRecord(index, 10, index, None, bytes([index % 256]) * size, pixel, pixel)
    )


def _fill_the_disk(store: ProjectStore) -> None:
    """Make the database unable to grow: SQLite's own limit, hit like a full disk."""
    store.submit(
        lambda c: c.execute(
            "PRAGMA max_page_count = " + str(c.execute("PRAGMA page_count").fetchone()[0])
        )
    ).result()


def _state(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        return {
            "versions": conn.execute("SELECT id, name FROM versions ORDER BY id").fetchall(),
            "steps": conn.execute(
                "SELECT version_id, idx, length(checkpoint) FROM steps ORDER BY version_id, idx"
            ).fetchall(),
        }
    finally:
        conn.close()


def test_disk_full_keeps_the_file_consistent_and_save_as_writes_everything(tmp_path: Path) -> None:
    path = tmp_path / "full.studio"
    store = ProjectStore.create(path)
    try:
        v1 = store.add_version(recipe_json=RECIPE, name="v1").result()
        for i in range(3):
            _step(store, v1, i).result()
        _fill_the_disk(store)

        failing = [_step(store, v1, 3), store.rename_version(v1, "renamed"), _step(store, v1, 4)]
        errors = [f.exception(timeout=30) for f in failing]
        assert all(isinstance(e, ProjectError) for e in errors)
        assert all(e.reason is ProjectErrorReason.DISK_FULL for e in errors)
        assert str(errors[0]).startswith("The disk is full")
        assert all(e.kept for e in errors), "every failed edit is kept for later"
        assert store.unwritten_count == 3

        assert store.integrity_check() == "ok"
        assert store.step_indices(v1) == [0, 1, 2], "the failed step did not half-land"
        assert store.version(v1).name == "v1"

        elsewhere = tmp_path / "elsewhere.studio"
        store.save_as(elsewhere).result(timeout=30)
        assert store.unwritten_count == 0
        assert store.step_indices(v1) == [0, 1, 2, 3, 4]
        assert store.version(v1).name == "renamed"
        _step(store, v1, 5).result()  # and work goes on in the new file
    finally:
        store.close()

    old = _state(path)
    assert [s[1] for s in old["steps"]] == [0, 1, 2]
    assert old["versions"] == [(v1, "v1")]
    new = _state(elsewhere)
    assert [s[1] for s in new["steps"]] == [0, 1, 2, 3, 4, 5]
    assert new["versions"] == [(v1, "renamed")]


def test_retry_after_space_is_freed_writes_the_kept_edits_in_order(tmp_path: Path) -> None:
    store = ProjectStore.create(tmp_path / "retry.studio")
    try:
        v1 = store.add_version(recipe_json=RECIPE, name="v1").result()
        _fill_the_disk(store)
        kept = [_step(store, v1, 0), _step(store, v1, 1), store.rename_version(v1, "after")]
        assert all(f.exception(timeout=30) is not None for f in kept)
        assert store.unwritten_count == 3
        # "free some space": lift the limit outside a transaction, since edits are queued behind the full one
        store._writer.put(
            lambda c: c.execute("PRAGMA max_page_count = 1073741823"), "free", transaction=False
        ).result()
        assert store.retry_unwritten().result(timeout=30) == 3
        assert store.step_indices(v1) == [0, 1]
        assert store.version(v1).name == "after"
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def _mount_tiny_tmpfs(mountpoint: Path, size: str) -> bool:
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("mount"):
        return False
    mountpoint.mkdir()
    result = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size}",
            f"studio-test-{uuid.uuid4().hex[:6]}",
            str(mountpoint),
        ],
        capture_output=True,
    )
    return result.returncode == 0


def test_a_really_full_filesystem(tmp_path: Path) -> None:
    """The same on a real 1 MiB filesystem (needs root to mount; skipped elsewhere)."""
    mountpoint = tmp_path / "tiny-disk"
    if not _mount_tiny_tmpfs(mountpoint, "1m"):
        pytest.skip("cannot mount a size-limited filesystem here")
    try:
        path = mountpoint / "real.studio"
        store = ProjectStore.create(path)
        try:
            v1 = store.add_version(recipe_json=RECIPE, name="v1").result()
            acknowledged = []
            error = None
            for i in range(100):
                error = _step(store, v1, i, size=60_000).exception(timeout=30)
                if error is not None:
                    break
                acknowledged.append(i)
            assert isinstance(error, ProjectError), "a 1 MiB disk must fill up"
            assert error.reason is ProjectErrorReason.DISK_FULL, str(error)
            assert acknowledged, "some steps fit before the disk filled"
            assert store.integrity_check() == "ok"
            assert store.step_indices(v1) == acknowledged
            store.save_as(tmp_path / "rescued.studio").result(timeout=30)
            assert store.step_indices(v1) == [*acknowledged, acknowledged[-1] + 1]
        finally:
            store.close()
        assert [s[1] for s in _state(tmp_path / "rescued.studio")["steps"]] == [
            *acknowledged,
            acknowledged[-1] + 1,
        ]
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
