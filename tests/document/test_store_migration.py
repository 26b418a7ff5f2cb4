"""Schema version 2: bred lineage and scores in the file, and version-1 files upgraded after a backup."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication

from studio.document.imageio import decode_png, encode_png
from studio.document.project import Project
from studio.document.scores import VersionScores
from studio.document.store import (
    SCHEMA_VERSION,
    ProjectError,
    ProjectErrorReason,
    ProjectStore,
    check_project_file,
    files,
)
from studio.document.store.migration import create_v1_schema
from studio.document.versions import VersionTree
from studio.engine.recipe import Recipe
from studio.protocol import ScoreSetting, StepRecord

R = ProjectErrorReason


def _png(value: int) -> bytes:
    return encode_png(np.full((8, 8, 3), value, np.uint8))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _v1_file(path: Path) -> None:
    """A project as version 1 wrote it: a root with steps, a branch, a deleted version, layers."""
    files.create_database(path, create_v1_schema)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        add = (
            "INSERT INTO versions(id, parent_id, branch_step, name, recipe_json, created,"
            " finished, partial, deleted, result_png) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        conn.execute(
            add,
            (
                "root",
                None,
                None,
                "v1",
                Recipe("a cat", seed=1, steps=4).to_json(),
                1.0,
                1,
                0,
                0,
                _png(9),
            ),
        )
        conn.execute(
            add,
            (
                "branch",
                "root",
                1,
                "v2",
                Recipe("a dog", seed=1, steps=4).to_json(),
                2.0,
                1,
                1,
                0,
                None,
            ),
        )
        for version, indices in (("root", range(4)), ("branch", range(2, 4))):
            for i in indices:
                conn.execute(
                    "INSERT INTO steps VALUES (?, ?, 4, ?, ?, ?, ?, ?)",
                    (
                        version,
                        i,
                        999.0 - i,
                        0.5,
                        _png(i),
                        _png(100 + i),
                        f"{version} {i}".encode() * 50,
                    ),
                )
        conn.execute(
            "INSERT INTO layers(id, position, name, visible, opacity, blend, offset_x, offset_y,"
            " version_id, pixels) VALUES ('bottom', 0, 'paint', 0, 0.5, 'multiply', 3, -2, 'root', ?)",
            (encode_png(np.full((4, 4, 4), 50, np.uint8)),),
        )
        conn.execute(
            "INSERT INTO layers(id, position, name, pixels) VALUES ('top', 1, 'top', ?)",
            (encode_png(np.full((4, 4, 4), 60, np.uint8)),),
        )
    finally:
        conn.close()


def _v1_contents(path: Path) -> tuple[list[tuple], list[tuple], list[tuple]]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        versions = conn.execute(
            "SELECT id, parent_id, branch_step, name, recipe_json, created, finished, partial,"
            " result_png FROM versions ORDER BY id"
        ).fetchall()
        steps = conn.execute(
            "SELECT version_id, idx, total, timestep, sigma, preview_x0, preview_xt, checkpoint"
            " FROM steps ORDER BY version_id, idx"
        ).fetchall()
        layers = conn.execute(
            "SELECT id, position, name, visible, opacity, blend, offset_x, offset_y, version_id,"
            " pixels FROM layers ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    return versions, steps, layers


def test_a_version_1_file_is_upgraded_after_a_backup_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "old.studio"
    _v1_file(path)
    before = _v1_contents(path)
    assert check_project_file(path) == 1

    store = ProjectStore.open(path)
    backup = tmp_path / "old.v1-backup.studio"
    assert store.backup_before_upgrade == backup
    assert store.schema_version == SCHEMA_VERSION
    records = {r.id: r for r in store.versions()}
    assert set(records) == {"root", "branch"}
    assert records["branch"].parent_id == "root" and records["branch"].branch_step == 1
    assert records["root"].bred_from == () and records["root"].generation == 0
    assert store.step_indices("root") == [0, 1, 2, 3] and store.step_indices("branch") == [2, 3]
    assert store.step_checkpoint("branch", 3) == b"branch 3" * 50
    assert [layer.name for layer in store.layers()] == ["paint", "top"]
    store.close()

    assert _v1_contents(path) == before  # every version, step and layer, byte for byte
    assert check_project_file(path) == SCHEMA_VERSION  # and the layout is exactly version 2's
    assert check_project_file(backup) == 1
    assert _v1_contents(backup) == before
    # reopening does not upgrade (or back up) again
    ProjectStore.open(path).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.studio", "old.v1-backup.studio"]


def test_reading_a_version_1_file_writes_nothing_until_it_starts_writing(tmp_path: Path) -> None:
    path = tmp_path / "old.studio"
    _v1_file(path)
    sha = _sha(path)
    store = ProjectStore.open(path, writing=False)
    document = Project.read(store)
    assert {v.id for v in document.versions} == {"root", "branch"}
    assert _sha(path) == sha and not (tmp_path / "old.v1-backup.studio").exists()
    store.start_writing()
    assert (tmp_path / "old.v1-backup.studio").exists()
    store.close()
    assert check_project_file(path) == SCHEMA_VERSION


def test_a_second_upgrade_backup_never_replaces_the_first(tmp_path: Path) -> None:
    path = tmp_path / "old.studio"
    _v1_file(path)
    first = tmp_path / "old.v1-backup.studio"
    first.write_bytes(b"someone's own file")
    with ProjectStore.open(path) as store:
        assert store.backup_before_upgrade == tmp_path / "old.v1-backup-2.studio"
    assert first.read_bytes() == b"someone's own file"


def test_a_newer_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.studio"
    ProjectStore.create(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    sha = _sha(path)
    with pytest.raises(ProjectError) as caught:
        ProjectStore.open(path)
    assert caught.value.reason is R.NEWER_SCHEMA
    assert _sha(path) == sha
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.studio"]


@pytest.mark.parametrize(
    "change",
    [
        "PRAGMA user_version = 1",  # version 2's tables under version 1's number
        "ALTER TABLE scores ADD COLUMN extra TEXT",
        "DROP INDEX version_parents_by_parent",
    ],
)
def test_the_schema_must_be_exactly_that_of_its_version(tmp_path: Path, change: str) -> None:
    path = tmp_path / "odd.studio"
    ProjectStore.create(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(change)
    conn.close()
    with pytest.raises(ProjectError) as caught:
        check_project_file(path)
    assert caught.value.reason is R.FOREIGN_SCHEMA


def test_a_version_1_number_on_a_file_missing_nothing_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.studio"
    _v1_file(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA user_version = 2")  # claims version 2 without its tables
    conn.close()
    with pytest.raises(ProjectError):
        check_project_file(path)


def test_a_loop_through_bred_parents_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.studio"
    with ProjectStore.create(path) as store:
        a = store.add_version(recipe_json=Recipe("a").to_json(), name="a").result()
        b = store.add_version(
            recipe_json=Recipe("b").to_json(), name="b", bred_from=[(a, 1.0)], generation=1
        ).result()
        store.submit(
            lambda conn: conn.execute("INSERT INTO version_parents VALUES (?, ?, 1.0, 0)", (a, b))
        ).result()
    with pytest.raises(ProjectError) as caught:
        check_project_file(path)
    assert caught.value.reason is R.INVALID and "loop" in str(caught.value)


def _scores(value: float) -> VersionScores:
    setting = ScoreSetting("bundled", "abc123", timesteps=8, noises=2, seed=7)
    return VersionScores(
        setting, value, 2 * value, 3 * value, 0.5, np.arange(6, dtype=np.float32) * value
    )


def _finished(tree: VersionTree, recipe: Recipe, bred_from=()) -> str:
    version = tree.new_version(recipe, bred_from=bred_from)
    tree.add(version)
    tree.append_step(
        version.id,
        StepRecord(
            0, 1, 999.0, 1.0, b"ck", np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
        ),
    )
    tree.finish(version.id, np.full((8, 8, 3), 5, np.uint8), partial=False)
    return version.id


def test_bred_lineage_and_scores_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "brood.studio"
    tree = VersionTree()
    project = Project(ProjectStore.create(path), tree)
    mother = _finished(tree, Recipe("a cat", seed=1))
    father = _finished(tree, Recipe("a cat", seed=2))
    child = _finished(tree, Recipe("a cat", seed=3), bred_from=((mother, 0.75), (father, 0.25)))
    grandchild = _finished(tree, Recipe("a cat", seed=4), bred_from=((child, 1.0), (mother, 1.0)))
    assert tree.get(child).generation == 1 and tree.get(grandchild).generation == 2
    changed: list[str] = []
    tree.scores_changed.connect(changed.append)
    tree.set_scores(child, _scores(0.25))
    tree.set_scores(mother, _scores(1.0))
    tree.set_scores(mother, None)  # forgotten again
    tree.set_scores(father, _scores(-1.0))
    assert changed == [child, mother, mother, father]
    project.close()
    QCoreApplication.processEvents()

    reopened = Project.load(ProjectStore.open(path))
    again = reopened.tree
    assert again.get(child).bred_from == ((mother, 0.75), (father, 0.25))
    assert again.get(grandchild).bred_from == ((child, 1.0), (mother, 1.0))
    assert [again.get(v).generation for v in (mother, child, grandchild)] == [0, 1, 2]
    assert again.get(mother).scores is None
    stored = again.get(child).scores
    assert stored is not None and stored.setting == _scores(0.25).setting
    assert (stored.fidelity, stored.novelty, stored.novelty_unconditional) == (0.25, 0.5, 0.75)
    assert stored.context_novelty == 0.5
    np.testing.assert_array_equal(stored.features, np.arange(6, dtype=np.float32) * 0.25)
    assert again.get(father).scores is not None and again.get(father).scores.fidelity == -1.0
    reopened.close()


def test_scores_of_a_deleted_version_go_with_it(tmp_path: Path) -> None:
    path = tmp_path / "gone.studio"
    with ProjectStore.create(path) as store:
        a = store.add_version(recipe_json=Recipe("a").to_json(), name="a").result()
        store.set_scores(a, _scores(1.0).to_record(a)).result()
        assert set(store.scores()) == {a}
        store.delete_version(a).result()
        assert store.scores() == {}
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 0  # purged on close
    conn.close()


def test_a_v1_step_preview_still_decodes_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.studio"
    _v1_file(path)
    with ProjectStore.open(path) as store:
        np.testing.assert_array_equal(
            decode_png(store.step_preview("root", 2)), np.full((8, 8, 3), 2, np.uint8)
        )
