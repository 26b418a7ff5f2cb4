"""Replacing a file atomically: the old file survives a failed write, and a saved file gets
the usual permissions (the umask's), not mkstemp's private 0600."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from studio.atomic_write import write_atomically


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_written_file_has_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = write_atomically(tmp_path / "out.png", b"pixels")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.read_bytes() == b"pixels"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_bytes(b"old")

    def fail(_temp):
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_atomically(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_store_export_and_the_cli_all_replace_files_through_the_one_helper(
    tmp_path, monkeypatch
):
    from studio import atomic_write, cli
    from studio.document.export import export_image
    from studio.document.store import ProjectStore
    from studio.engine.recipe import Recipe

    written: list[str] = []
    helper = atomic_write.write_atomically

    def spy(path, write, **options):
        written.append(os.path.basename(path))
        return helper(path, write, **options)

    monkeypatch.setattr(atomic_write, "write_atomically", spy)
    recipe = Recipe("a fox", seed=1, steps=2, width=16, height=16)
    pixels = np.zeros((16, 16, 3), np.uint8)
    store = ProjectStore.create(tmp_path / "new.studio")
    try:
        store.save_as(tmp_path / "copy.studio").result()
    finally:
        store.close()
    export_image(pixels, tmp_path / "export.png", recipe)
    cli._write_bytes(tmp_path / "step.ckpt", b"checkpoint")
    cli._write_image(tmp_path / "render.png", pixels, recipe, "")
    cli._write_preview(tmp_path / "step_0001.png", pixels, recipe)
    assert written == [
        "new.studio",
        "copy.studio",
        "export.png",
        "step.ckpt",
        "render.png",
        "step_0001.png",
    ]
    assert not [p.name for p in tmp_path.iterdir() if ".part" in p.name or p.name.startswith(".")]


def test_a_step_before_the_rename_sees_the_temporary_file_complete(tmp_path):
    target = tmp_path / "project.studio"
    target.write_bytes(b"old")
    seen: list[bytes] = []

    def before_replace(path):
        assert path == target
        (temp,) = tmp_path.glob(".project.studio.*.saving")
        seen.append(temp.read_bytes())
        assert target.read_bytes() == b"old", "not replaced yet"

    write_atomically(target, b"new", temp_suffix=".saving", before_replace=before_replace)
    assert seen == [b"new"] and target.read_bytes() == b"new"
