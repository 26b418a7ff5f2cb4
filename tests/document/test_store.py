"""The .studio project store: round trips, soft deletes, layers, Save As, threading."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from studio.document.imageio import decode_png
from studio.document.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    ProjectError,
    ProjectErrorReason,
    ProjectStore,
    project_store,
)
from studio.protocol import StepRecord

RECIPE = '{"prompt": "a red cube", "seed": 1, "steps": 4}'


def _preview(value: int, size: int = 16) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = value
    image[::2, :, 1] = 255 - value
    return image


def _checkpoint(version: str, index: int, size: int = 20_000) -> bytes:
    return (f"{version}:{index}:".encode() * size)[:size]


def _record(version: str, index: int, total: int) -> StepRecord:
    return StepRecord(
        index=index,
        total=total,
        timestep=999 - index * 250,
        sigma=14.6 / (index + 1),
        checkpoint=_checkpoint(version, index),
        preview_x0=_preview(index * 40),
        preview_xt=_preview(255 - index * 40),
    )


def _add_run(store: ProjectStore, name: str, steps: int, **kw: object) -> str:
    version = store.add_version(recipe_json=RECIPE, name=name, **kw).result()
    branch_step = kw.get("branch_step")
    first = 0 if branch_step is None else int(branch_step) + 1
    for i in range(first, steps):
        store.append_step(version, _record(version, i, steps))
    store.finish_version(version, _preview(7, 32), partial=False).result()
    return version


@pytest.fixture
def store(tmp_path: Path):
    s = ProjectStore.create(tmp_path / "p.studio")
    yield s
    s.close()


def test_header_marks_the_file_and_foreign_keys_are_on(store: ProjectStore) -> None:
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()
    assert meta["app"] == "noise-studio"
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert store.submit(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0]).result() == 1
    # a step for a version that does not exist is refused by the foreign key
    with pytest.raises(ProjectError):
        store.append_step("nope", _record("nope", 0, 1)).result()


def test_everything_round_trips_through_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "round.studio"
    store = ProjectStore.create(path)
    root = _add_run(store, "v1", 4)
    branch = _add_run(store, "v2", 4, parent_id=root, branch_step=1)
    layer = store.add_layer(
        pixels=np.full((8, 8, 4), 200, np.uint8), name="bg", version_id=root
    ).result()
    store.update_layer(layer, opacity=0.5, blend="multiply", offset_x=3, offset_y=-2, visible=False)
    store.rename_version(branch, "sunset").result()
    store.close()
    assert not Path(f"{path}-wal").exists(), "a closed project is one file"

    store = ProjectStore.open(path)
    try:
        versions = {v.id: v for v in store.versions()}
        assert [v.id for v in store.versions()] == [root, branch]
        assert versions[branch].name == "sunset"
        assert versions[branch].parent_id == root and versions[branch].branch_step == 1
        assert versions[root].finished and not versions[root].partial and versions[root].has_result
        assert store.step_indices(root) == [0, 1, 2, 3]
        assert store.step_indices(branch) == [2, 3]
        assert store.step_checkpoint(branch, 3) == _checkpoint(branch, 3)
        assert np.array_equal(store.step_preview_image(root, 2, "x0"), _preview(80))
        assert np.array_equal(store.step_preview_image(root, 2, "xt"), _preview(255 - 80))
        steps = [store.step(root, i) for i in store.step_indices(root)]
        assert [s.total for s in steps] == [4] * 4 and steps[1].timestep == 749
        assert steps[2].checkpoint == _checkpoint(root, 2)
        assert np.array_equal(steps[2].preview_x0, _preview(80))
        assert np.array_equal(steps[2].preview_xt, _preview(255 - 80))
        assert steps[0].sigma == pytest.approx(14.6)
        assert np.array_equal(store.result(root), _preview(7, 32))
        (record,) = store.layers()
        assert (record.id, record.opacity, record.blend, record.visible) == (
            layer,
            0.5,
            "multiply",
            False,
        )
        assert (record.offset_x, record.offset_y, record.version_id) == (3, -2, root)
        assert np.array_equal(decode_png(record.pixels), np.full((8, 8, 4), 200, np.uint8))
        snap = store.snapshot()
        assert snap.step_indices == {root: [0, 1, 2, 3], branch: [2, 3]}
        assert np.array_equal(decode_png(snap.last_previews[branch]), _preview(120))
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def test_delete_hides_the_subtree_and_restore_brings_back_exactly_it(store: ProjectStore) -> None:
    root = _add_run(store, "v1", 3)
    child = _add_run(store, "v2", 3, parent_id=root, branch_step=0)
    other = _add_run(store, "v3", 3, parent_id=root, branch_step=1)
    store.delete_version(other).result()  # deleted first, on its own
    store.delete_version(root).result()
    assert store.versions() == []
    store.restore_version(root).result()
    assert {v.id for v in store.versions()} == {root, child}, "only what that delete hid comes back"
    assert store.step_indices(child) == [1, 2]
    store.restore_version(other).result()
    assert {v.id for v in store.versions()} == {root, child, other}
    assert store.step_checkpoint(other, 2) == _checkpoint(other, 2)


def test_deleted_rows_are_purged_on_close(tmp_path: Path) -> None:
    path = tmp_path / "purge.studio"
    store = ProjectStore.create(path)
    keep = _add_run(store, "v1", 2)
    gone = _add_run(store, "v2", 2, parent_id=keep, branch_step=0)
    store.delete_version(gone).result()
    store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id FROM versions").fetchall() == [(keep,)]
        assert (
            conn.execute("SELECT count(*) FROM steps WHERE version_id = ?", (gone,)).fetchone()[0]
            == 0
        )
    finally:
        conn.close()


def test_layers_insert_move_reorder_delete_restore(store: ProjectStore) -> None:
    px = np.zeros((4, 4, 4), np.uint8)
    a = store.add_layer(pixels=px, name="a").result()
    b = store.add_layer(pixels=px, name="b").result()
    c = store.add_layer(pixels=px, name="c", position=0).result()

    def order() -> list[str]:
        layers = store.layers()
        assert [lay.position for lay in layers] == list(range(len(layers)))
        return [lay.name for lay in layers]

    assert order() == ["c", "a", "b"]
    store.move_layer(c, 2).result()
    assert order() == ["a", "b", "c"]
    store.reorder_layers([b, c, a]).result()
    assert order() == ["b", "c", "a"]
    store.delete_layer(c).result()
    assert order() == ["b", "a"]
    store.restore_layer(c).result()
    assert order() == ["b", "c", "a"]
    with pytest.raises(ProjectError):
        store.reorder_layers([a, b]).result()
    assert order() == ["b", "c", "a"], "a refused edit changes nothing"
    store.set_layer_pixels(a, np.full((2, 3, 4), 9, np.uint8)).result()
    assert decode_png(store.layers()[2].pixels).shape == (2, 3, 4)


def test_a_failed_edit_rolls_back_and_later_edits_go_on(store: ProjectStore) -> None:
    v = store.add_version(recipe_json=RECIPE, name="v1").result()

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE versions SET name = 'half' WHERE id = ?", (v,))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.submit(half_then_fail).result()
    assert store.version(v).name == "v1"
    with pytest.raises(ProjectError) as info:
        store.rename_version("missing", "x").result()
    assert info.value.reason is ProjectErrorReason.NOT_FOUND
    store.rename_version(v, "ok").result()
    assert store.version(v).name == "ok"


def test_writes_run_off_the_calling_thread_in_order(store: ProjectStore) -> None:
    seen: list[str] = []
    v = store.add_version(recipe_json=RECIPE, name="v1")
    futures = [
        store.submit(lambda conn, i=i: seen.append(f"{i}:{threading.current_thread().name}"))
        for i in range(20)
    ]
    for f in futures:
        f.result()
    assert v.done()
    assert [s.split(":")[0] for s in seen] == [str(i) for i in range(20)]
    assert all(s.endswith("project-writer") for s in seen)
    assert threading.current_thread().name != "project-writer"


def test_previews_are_encoded_on_the_writer_thread(
    store: ProjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    encode = project_store.encode_png

    def spying(image: np.ndarray | bytes) -> bytes:
        threads.append(threading.current_thread().name)
        return encode(image)

    monkeypatch.setattr(project_store, "encode_png", spying)
    v = store.add_version(recipe_json=RECIPE, name="v1").result()
    store.append_step(v, _record(v, 0, 1)).result()
    assert threads == ["project-writer", "project-writer"]
    assert store.step_checkpoint(v, 0) == _checkpoint(v, 0)


def test_save_as_copies_with_backup_and_continues_in_the_new_file(tmp_path: Path) -> None:
    first = tmp_path / "first.studio"
    store = ProjectStore.create(first)
    try:
        v = _add_run(store, "v1", 3)
        target = tmp_path / "sub dir" / "second copy.studio"
        target.parent.mkdir()
        assert store.save_as(target).result() == target
        assert store.path == target and store.name == "second copy"
        store.rename_version(v, "after save as").result()
        assert store.version(v).name == "after save as"
        assert not list(tmp_path.rglob("*.saving")), "no temporary file is left"
        assert sorted(
            p.name for p in target.parent.iterdir() if "-wal" not in p.name and "-shm" not in p.name
        ) == [target.name, target.name + "-lock"], "the open copy is locked"
        assert not Path(f"{first}-lock").exists(), "the old file is no longer held"
    finally:
        store.close()
    assert not Path(f"{target}-lock").exists(), "closing releases the lock"
    with ProjectStore.open(first) as old:
        assert old.version(v).name == "v1", "the old file is left as it was"
    with ProjectStore.open(target) as new:
        assert new.version(v).name == "after save as"
        assert new.step_checkpoint(v, 2) == _checkpoint(v, 2)
        assert new.integrity_check() == "ok"


def test_save_as_over_an_existing_file_replaces_it_whole(tmp_path: Path) -> None:
    target = tmp_path / "target.studio"
    with ProjectStore.create(target) as old:
        old_version = _add_run(old, "old", 2)
    with ProjectStore.create(tmp_path / "src.studio") as store:
        v = _add_run(store, "new", 2)
        store.save_as(target).result()
    with ProjectStore.open(target) as reopened:
        assert [r.id for r in reopened.versions()] == [v]
        assert old_version != v


def test_create_refuses_to_replace_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "exists.studio"
    path.write_bytes(b"precious")
    with pytest.raises(ProjectError):
        ProjectStore.create(path)
    assert path.read_bytes() == b"precious"


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = ProjectStore.create(tmp_path / "c.studio")
    store.close()
    with pytest.raises(ProjectError) as info:
        store.add_version(recipe_json=RECIPE, name="late").result()
    assert info.value.reason is ProjectErrorReason.CLOSED
    with pytest.raises(ProjectError):
        store.versions()


def test_reads_on_another_thread_do_not_wait_for_a_long_write(store: ProjectStore) -> None:
    v = _add_run(store, "v1", 2)
    inside = threading.Event()
    release = threading.Event()

    def slow_write(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE versions SET name = 'writing' WHERE id = ?", (v,))
        inside.set()
        release.wait(10)

    future = store.submit(slow_write)
    assert inside.wait(10)
    try:
        # WAL: the reader sees the last committed state while the writer holds its lock
        assert store.version(v).name == "v1"
        assert store.step_checkpoint(v, 1) == _checkpoint(v, 1)
    finally:
        release.set()
    future.result()
    assert store.version(v).name == "writing"
