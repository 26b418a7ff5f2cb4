"""Project files built to break the window: foreign SQL, broken graphs, bombs, deep lineages,
stray journals and a second instance. Each is refused (or opened) without a byte written."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from studio.document.imageio import encode_png
from studio.document.project import Project
from studio.document.store import (
    ProjectError,
    ProjectErrorReason,
    ProjectStore,
    check_project_file,
)
from studio.document.store.files import set_journal_aside
from studio.document.versions import Version, VersionTree
from studio.engine.recipe import Recipe
from studio.protocol import StepRecord

R = ProjectErrorReason
REPO = Path(__file__).resolve().parents[2]
RECIPE = Recipe(prompt="a fox", steps=4, width=32, height=32).to_json()
PIXELS = np.zeros((4, 4, 3), np.uint8)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def good_project(path: Path, versions: int = 3, deleted: bool = True) -> Path:
    """Versions with steps and a layer; with ``deleted`` also a soft-deleted version (undo can
    bring it back, so only a file that is opened for writing may purge it)."""
    with ProjectStore.create(path) as store:
        for n in range(versions + int(deleted)):
            v = store.add_version(recipe_json=RECIPE, name=f"v{n + 1}").result()
            for i in range(2):
                store.append_step(v, StepRecord(i, 4, i, None, os.urandom(700), PIXELS, PIXELS))
        store.add_layer(pixels=np.zeros((4, 4, 4), np.uint8), name="layer").result()
    if deleted:  # as a crash leaves it: closing would have purged the deletion
        edit(path, "UPDATE versions SET deleted = 1 WHERE id = ?", params=(v,))
    assert soft_deleted(path) == int(deleted)
    return path


def soft_deleted(path: Path) -> int:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM versions WHERE deleted != 0").fetchone()[0]
    finally:
        conn.close()


def edit(path: Path, *statements: str, params: tuple = ()) -> None:
    """Change the file behind the store's back, as another program would."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        for sql in statements:
            conn.execute(sql, params if "?" in sql else ())
    finally:
        conn.close()
    assert not Path(f"{path}-wal").exists()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixels: a decompression bomb's head."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def refused(path: Path, reason: ProjectErrorReason) -> str:
    """Open must refuse ``path`` with ``reason`` and leave it byte for byte (deleted rows kept)."""
    before, hidden = sha256(path), soft_deleted(path)
    started = time.monotonic()
    with pytest.raises(ProjectError) as caught:
        ProjectStore.open(path)
    assert caught.value.reason is reason, str(caught.value)
    assert time.monotonic() - started < 10
    assert sha256(path) == before, "a refused file is not written to"
    assert soft_deleted(path) == hidden, "a refused file is not purged"
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-lock").exists()
    message = str(caught.value)
    assert path.name in message and message.endswith(".")
    return message


# ---- 7: the file's own SQL objects ------------------------------------------------


def test_a_trigger_that_never_ends_is_refused_before_anything_is_written(tmp_path):
    path = good_project(tmp_path / "loop.studio")
    edit(
        path,
        "CREATE TRIGGER spin AFTER INSERT ON steps BEGIN"
        " SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
        " SELECT x FROM c); END",
    )
    assert "trigger" in refused(path, R.FOREIGN_SCHEMA)


def test_a_trigger_that_deletes_new_steps_is_refused(tmp_path):
    path = good_project(tmp_path / "eat.studio")
    edit(
        path,
        "CREATE TRIGGER eat AFTER INSERT ON steps BEGIN"
        " DELETE FROM steps WHERE rowid = new.rowid; END",
    )
    assert "“eat”" in refused(path, R.FOREIGN_SCHEMA)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE VIEW everything AS SELECT * FROM versions",
        "ALTER TABLE steps ADD COLUMN extra TEXT",
        "DROP INDEX versions_by_parent",
        "CREATE INDEX by_name ON versions(name)",
        "CREATE TABLE notes (x)",
    ],
    ids=["view", "column", "missing index", "extra index", "extra table"],
)
def test_a_schema_other_than_ours_is_refused(tmp_path, statement):
    path = good_project(tmp_path / "other.studio")
    edit(path, statement)
    refused(path, R.FOREIGN_SCHEMA)


def test_our_own_files_pass_the_schema_check(tmp_path):
    path = good_project(tmp_path / "ours.studio")
    with ProjectStore.open(path) as store:
        assert store.integrity_check() == "ok"
    assert soft_deleted(path) == 0, "a file that passed every check is purged"


# ---- 5: the graph, the counts, the images -----------------------------------------


def _first_two(path: Path) -> tuple[str, str]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        ids = [
            r[0] for r in conn.execute("SELECT id FROM versions WHERE deleted = 0 ORDER BY rowid")
        ]
    finally:
        conn.close()
    return ids[0], ids[1]


def _dangling_parent(path: Path) -> None:
    a, _ = _first_two(path)
    edit(
        path, "UPDATE versions SET parent_id = 'nobody', branch_step = 0 WHERE id = ?", params=(a,)
    )


def _self_parent(path: Path) -> None:
    a, _ = _first_two(path)
    edit(path, "UPDATE versions SET parent_id = id, branch_step = 0 WHERE id = ?", params=(a,))


def _cycle(path: Path) -> None:
    a, b = _first_two(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE versions SET parent_id = ?, branch_step = 0 WHERE id = ?", (b, a))
    conn.execute("UPDATE versions SET parent_id = ?, branch_step = 0 WHERE id = ?", (a, b))
    conn.close()


def _non_png_preview(path: Path) -> None:
    edit(path, "UPDATE steps SET preview_x0 = ? WHERE idx = 1", params=(b"GIF89a" + bytes(40),))


def _bomb_preview(path: Path) -> None:
    edit(
        path,
        "UPDATE steps SET preview_xt = ? WHERE idx = 0",
        params=(png_header(100_000, 100_000),),
    )


def _bomb_result(path: Path) -> None:
    edit(path, "UPDATE versions SET result_png = ?", params=(png_header(65_536, 65_536),))


def _bomb_layer(path: Path) -> None:
    edit(path, "UPDATE layers SET pixels = ?", params=(png_header(1, 2_000_000_000),))


def _too_many_layers(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    png = encode_png(np.zeros((1, 1, 4), np.uint8))
    conn.executemany(
        "INSERT INTO layers(id, position, name, pixels) VALUES (?, ?, 'l', ?)",
        [(f"extra{n}", n + 1, png) for n in range(1000)],
    )
    conn.close()


def _text_where_a_blob_belongs(path: Path) -> None:
    edit(path, "UPDATE steps SET checkpoint = 'not bytes' WHERE idx = 0")


@pytest.mark.parametrize(
    "damage",
    [
        _dangling_parent,
        _self_parent,
        _cycle,
        _non_png_preview,
        _bomb_preview,
        _bomb_result,
        _bomb_layer,
        _too_many_layers,
        _text_where_a_blob_belongs,
    ],
    ids=lambda f: f.__name__.strip("_").replace("_", " "),
)
def test_a_file_that_would_break_opening_half_way_is_refused_whole(tmp_path, damage):
    path = good_project(tmp_path / "bad.studio")
    damage(path)
    refused(path, R.INVALID)


def test_a_preview_that_fails_to_decode_when_shown_becomes_a_placeholder(tmp_path, qapp):
    path = good_project(tmp_path / "torn.studio", deleted=False)
    whole = encode_png(np.full((8, 8, 3), 200, np.uint8))
    edit(path, "UPDATE steps SET preview_x0 = ? WHERE idx = 0", params=(whole[:40],))
    store = ProjectStore.open(path)
    project = Project.load(store)
    said: list[str] = []
    project.image_unreadable.connect(said.append)
    try:
        version = project.tree.versions()[0]
        step = project.tree.step(version.id, 0)  # no exception
        assert step.preview_x0.shape == (64, 64, 3) and (step.preview_x0 == 128).all()
        assert step.preview_xt.shape == PIXELS.shape, "the other preview is shown as it is"
        assert len(said) == 1 and "v1" in said[0] and said[0].count(".") == 1
        assert project.tree.step(version.id, 1).preview_x0.shape == PIXELS.shape
    finally:
        project.close()


def test_a_big_file_leaves_step_previews_to_their_own_check_when_read(tmp_path, qapp, monkeypatch):
    from studio.document.store import checks

    monkeypatch.setattr(checks, "FULL_CHECK_BYTES", 0)  # the lighter check of a big file
    path = good_project(tmp_path / "big.studio", deleted=False)
    _bomb_preview(path)
    project = Project.load(ProjectStore.open(path))  # not every step's header is read
    try:
        version = project.tree.versions()[0]
        step = project.tree.step(version.id, 0)
        assert step.preview_xt.shape == (64, 64, 3) and (step.preview_xt == 128).all()
    finally:
        project.close()
    _bomb_result(path)
    refused(path, R.INVALID)  # results, layers and init images are still all checked


# ---- 8: nothing is written before every check has passed -------------------------


def test_a_file_whose_document_does_not_build_is_not_written_or_purged(tmp_path, qapp):
    path = good_project(tmp_path / "recipe.studio")
    edit(path, 'UPDATE versions SET recipe_json = \'{"steps": "many"\' WHERE deleted = 0')
    before = sha256(path)
    store = ProjectStore.open(path, writing=False)
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever a bad recipe raises
            Project.read(store)
    finally:
        store.close()
    assert sha256(path) == before and soft_deleted(path) == 1
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-lock").exists()


# ---- 6: a deep lineage ------------------------------------------------------------

DEPTH = 1200


def test_a_lineage_of_1200_branches_in_a_chain_is_walked_without_recursion(qapp):
    assert sys.getrecursionlimit() < DEPTH
    tree = VersionTree()
    recipe = Recipe.from_json(RECIPE)
    parent: Version | None = None
    for n in range(DEPTH):
        version = Version(
            recipe=recipe,
            name=f"v{n + 1}",
            parent_id=None if parent is None else parent.id,
            branch_step=None if parent is None else n - 1,
            step_indices=[n],
        )
        tree.add(version)
        parent = version
    leaf, root = tree.versions()[-1], tree.versions()[0]
    refs = tree.trajectory(leaf.id)
    assert [r.index for r in refs] == list(range(DEPTH))
    assert refs[0].owner_id == root.id and refs[-1].owner_id == leaf.id
    assert tree.step_owner(leaf.id, 0) is root
    assert tree.step_owner(leaf.id, 700).name == "v701"
    assert len(tree.descendants(root.id)) == DEPTH - 1
    assert len(tree.lineage(leaf.id)) == DEPTH


def test_a_project_with_a_1200_deep_lineage_opens(tmp_path, qapp):
    path = tmp_path / "deep.studio"
    ids = [f"id{n:05d}" for n in range(DEPTH)]
    with ProjectStore.create(path) as store:

        def write(conn: sqlite3.Connection) -> None:
            # created in reverse: children listed before their parents, the hard order
            conn.executemany(
                "INSERT INTO versions(id, parent_id, branch_step, name, recipe_json, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        ids[n],
                        ids[n - 1] if n else None,
                        n - 1 if n else None,
                        f"v{n + 1}",
                        RECIPE,
                        -n,
                    )
                    for n in range(DEPTH)
                ],
            )

        store.submit(write).result()
    store = ProjectStore.open(path)
    project = Project.load(store)
    try:
        assert [v.id for v in project.tree.versions()] == ids
        assert project.tree.lineage(ids[-1])[-1].id == ids[0]
    finally:
        project.close()


# ---- 9: a journal that belongs to another database --------------------------------


def _foreign_wal(path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    for _ in range(40):
        conn.execute("INSERT INTO t VALUES (randomblob(3000))")
    Path(f"{path}-wal").write_bytes(Path(f"{other}-wal").read_bytes())
    conn.close()


def test_a_stray_journal_from_another_database_is_named_and_can_be_set_aside(tmp_path):
    path = good_project(tmp_path / "healthy.studio", deleted=False)
    _foreign_wal(path, tmp_path)
    before = sha256(path)
    with pytest.raises(ProjectError) as caught:
        check_project_file(path)
    assert caught.value.reason is R.FOREIGN_JOURNAL
    message = str(caught.value)
    assert "healthy.studio-wal" in message and "does not belong" in message
    assert "damaged" not in message and message.count(".") <= 3
    assert sha256(path) == before and Path(f"{path}-wal").exists()

    aside = set_journal_aside(path)
    assert aside.exists() and not Path(f"{path}-wal").exists()
    assert sha256(path) == before
    with ProjectStore.open(path) as store:
        assert [v.name for v in store.versions()] == ["v1", "v2", "v3"]


def test_a_damaged_file_with_a_journal_is_still_called_damaged(tmp_path):
    path = good_project(tmp_path / "broken.studio", deleted=False)
    edit(path, "CREATE TRIGGER t AFTER INSERT ON steps BEGIN SELECT 1; END")
    _foreign_wal(path, tmp_path)
    with pytest.raises(ProjectError) as caught:
        check_project_file(path)
    assert caught.value.reason is not R.FOREIGN_JOURNAL


# ---- 10: two instances on one file ----------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys
    from studio.document.store import ProjectStore
    store = ProjectStore.open(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.read()
    store.close()
    """
)


@pytest.fixture
def holder_of(tmp_path):
    procs: list[subprocess.Popen] = []

    def start(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        procs.append(proc)
        assert proc.stdout.readline() == b"holding\n", proc.stderr.read().decode()[-2000:]
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_second_process_can_neither_open_nor_overwrite_a_held_project(tmp_path, holder_of):
    held = good_project(tmp_path / "held.studio", deleted=False)
    holder = holder_of(held)

    with pytest.raises(ProjectError) as caught:
        ProjectStore.open(held)
    assert caught.value.reason is R.IN_USE
    assert f"process {holder.pid}" in str(caught.value)
    with pytest.raises(ProjectError) as caught:
        check_project_file(held)
    assert caught.value.reason is R.IN_USE

    mine = good_project(tmp_path / "mine.studio", deleted=False)
    with ProjectStore.open(mine) as store:
        before = sha256(held)
        with pytest.raises(ProjectError) as caught:
            store.save_as(held).result()
        assert caught.value.reason is R.IN_USE
        assert store.path == mine, "the store carries on in its own file"
        with pytest.raises(ProjectError):
            store.backup_to(held).result()
    assert sha256(held) == before

    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert Path(f"{held}-lock").exists(), "a crash leaves the lock file behind"
    with ProjectStore.open(held) as store:  # ...and it is stale: the OS lock died with it
        assert len(store.versions()) == 3


_DELETING_HOLDER = textwrap.dedent(
    """
    import sys
    from studio.document.store import ProjectStore
    store = ProjectStore.open(sys.argv[1])
    store.delete_version(store.versions()[1].id).result()  # undoable: the row stays, hidden
    print("holding", flush=True)
    sys.stdin.read()
    """
)


def _hidden_through_the_journal(path: Path) -> int:
    """Soft-deleted versions as the holder sees them, its -wal included."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM versions WHERE deleted != 0").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_second_process_never_purges_the_holders_undoable_delete(tmp_path, qapp):
    from studio.document import recovery

    held = good_project(tmp_path / "held.studio", deleted=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", _DELETING_HOLDER, str(held)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline() == b"holding\n", holder.stderr.read().decode()[-2000:]
        assert _hidden_through_the_journal(held) == 1
        with pytest.raises(ProjectError) as caught:
            ProjectStore.open(held)
        assert caught.value.reason is R.IN_USE
        store, lock = recovery.copy_to_untitled(held, tmp_path / "recovery")
        try:
            store.start_writing()  # the copy purges its own hidden rows, not the held file's
            store.flush()
            assert [v.name for v in store.versions()] == ["v1", "v3"]
        finally:
            store.close()
            lock.release(remove_project=True)
        assert _hidden_through_the_journal(held) == 1, "the holder can still undo its delete"
    finally:
        holder.kill()
        holder.wait(10)
        for stream in (holder.stdin, holder.stdout, holder.stderr):
            stream.close()
    assert _hidden_through_the_journal(held) == 1


def test_an_untitled_copy_of_a_held_project_leaves_it_untouched(tmp_path, holder_of, qapp):
    from studio.document import recovery

    held = good_project(tmp_path / "held.studio", deleted=False)
    holder_of(held)
    before = sha256(held)
    store, lock = recovery.copy_to_untitled(held, tmp_path / "recovery")
    try:
        assert not store.writing
        store.start_writing()
        store.add_version(recipe_json=RECIPE, name="mine").result()
        assert [v.name for v in store.versions()] == ["v1", "v2", "v3", "mine"]
    finally:
        store.close()
        lock.release(remove_project=True)
    assert sha256(held) == before
