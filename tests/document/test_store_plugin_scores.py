"""Scorer plug-in values in the project file: beside the scores, with what produced them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QUndoStack

from studio.document.commands import DeleteVersionCommand
from studio.document.project import Project
from studio.document.scores import PluginValue, VersionScores
from studio.document.store import ProjectStore, check_project_file
from studio.document.versions import VersionTree
from studio.engine.recipe import Recipe
from studio.protocol import PluginScore, ScoreRow, ScoreSetting
from tests.document.test_store_images import _v2_file
from tests.document.test_store_migration import _finished

SETTING = ScoreSetting("bundled", "abc123", timesteps=8, noises=2, seed=7)


def _scores(clip: float, aesthetic: float | None = None) -> VersionScores:
    plugins = [PluginValue("clip", clip, "clip tiny 0123456789ab")]
    if aesthetic is not None:
        plugins.insert(0, PluginValue("aesthetic", aesthetic, "aesthetic head 89ab"))
    return VersionScores(SETTING, 0.5, 1.5, plugins=tuple(plugins))


def test_plugin_values_and_their_settings_survive_closing_and_reopening(qapp, tmp_path: Path):
    path = tmp_path / "plugins.studio"
    tree = VersionTree()
    project = Project(ProjectStore.create(path), tree)
    a = _finished(tree, Recipe("a cat", seed=1))
    b = _finished(tree, Recipe("a cat", seed=2))
    tree.set_scores(a, _scores(27.25, 5.5))
    tree.set_scores(b, _scores(3.0))
    tree.set_scores(b, _scores(4.0))  # replaced, not added to
    project.close()
    QCoreApplication.processEvents()

    assert check_project_file(path) == 3
    reopened = Project.load(ProjectStore.open(path))
    try:
        stored = reopened.tree.get(a).scores
        assert stored is not None
        assert stored.plugins == (
            PluginValue("aesthetic", 5.5, "aesthetic head 89ab"),
            PluginValue("clip", 27.25, "clip tiny 0123456789ab"),
        )
        assert stored.plugin("clip") == 27.25 and stored.plugin("nothing") is None
        assert reopened.tree.get(b).scores.plugins == (
            PluginValue("clip", 4.0, "clip tiny 0123456789ab"),
        )
    finally:
        reopened.close()


def test_forgetting_scores_forgets_the_plugin_values(tmp_path: Path) -> None:
    path = tmp_path / "forget.studio"
    with ProjectStore.create(path) as store:
        a = store.add_version(recipe_json=Recipe("a").to_json(), name="a").result()
        store.set_scores(a, _scores(1.0, 2.0).to_record(a)).result()
        assert store.scores()[a].plugins == (
            ("aesthetic", 2.0, "aesthetic head 89ab"),
            ("clip", 1.0, "clip tiny 0123456789ab"),
        )
        store.set_scores(a, None).result()
        assert store.scores() == {}
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM plugin_scores").fetchone()[0] == 0
    conn.close()


def test_deleting_and_undoing_a_version_keeps_its_plugin_values(qapp, tmp_path: Path):
    path = tmp_path / "undo.studio"
    tree, undo = VersionTree(), QUndoStack()
    project = Project(ProjectStore.create(path), tree)
    a = _finished(tree, Recipe("a cat", seed=1))
    gone = _finished(tree, Recipe("a cat", seed=2))
    tree.set_scores(a, _scores(10.0))
    tree.set_scores(gone, _scores(20.0))
    undo.push(DeleteVersionCommand(tree, gone))
    project.store.flush()
    assert set(project.store.scores()) == {a}  # a deleted version's values are not read
    undo.undo()
    project.store.flush()
    assert project.store.scores()[gone].plugins == (("clip", 20.0, "clip tiny 0123456789ab"),)
    undo.redo()
    project.close()
    QCoreApplication.processEvents()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT version_id, value FROM plugin_scores").fetchall()
    conn.close()
    assert rows == [(a, 10.0)]  # the deleted version's went with it when it was purged


def test_a_version_2_file_upgrades_with_the_plugin_table(tmp_path: Path) -> None:
    path = tmp_path / "old.studio"
    _v2_file(path)
    with ProjectStore.open(path) as store:
        store.set_scores("root", _scores(7.0).to_record("root")).result()
        assert store.scores()["root"].plugins == (("clip", 7.0, "clip tiny 0123456789ab"),)
    assert check_project_file(path) == 3  # exactly version 3's layout, plugin_scores included


def test_a_row_keeps_earlier_plugin_values_it_has_none_of() -> None:
    row = ScoreRow("a", 0.1, 0.2, 0.3, (), np.zeros(2, np.float32), (PluginScore("clip", 9.0),))
    kept = (PluginValue("aesthetic", 4.0, "old head"), PluginValue("clip", 1.0, "old clip"))
    scores = VersionScores.from_row(row, SETTING, None, {"clip": "new clip"}, kept)
    assert scores.plugins == (
        PluginValue("aesthetic", 4.0, "old head"),
        PluginValue("clip", 9.0, "new clip"),
    )
