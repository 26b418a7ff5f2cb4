"""Scores through the session: what a Score job is sent, and what comes back into ``scores``."""

from __future__ import annotations

import numpy as np
import pytest

from studio.document.versions import VersionTree
from studio.engine.plugins import PluginSpec, plugin_setting
from studio.engine.recipe import Recipe
from studio.protocol import JobFinished, ModelLoaded, StepRecord
from studio.scores import ordered, score_groups
from studio.session import Session
from tests.session.test_session import _recipe, _tiny_worker


def _step(index: int, checkpoint: bytes) -> StepRecord:
    blank = np.zeros((4, 4, 3), np.uint8)
    return StepRecord(index, 4, 1.0, None, checkpoint, blank, blank)


def _version(tree: VersionTree, prompt: str, result: np.ndarray | None, steps: int) -> str:
    version = tree.new_version(Recipe(prompt, seed=1, steps=4))
    tree.add(version)
    for index in range(steps):
        tree.append_step(version.id, _step(index, f"checkpoint {index}".encode()))
    tree.finish(version.id, result, partial=result is None)
    return version.id


def test_score_groups_send_results_or_the_last_checkpoint_grouped_by_prompt(qapp):
    tree = VersionTree()
    image = np.full((8, 8, 3), 7, np.uint8)
    finished = _version(tree, "a fox", image, 4)
    partial = _version(tree, "a fox", None, 2)
    empty = _version(tree, "a fox", None, 0)
    other = _version(tree, "a cat", image, 4)

    groups = score_groups(tree, [finished, partial, empty, other, finished])

    assert [(g.prompt, g.version_ids) for g in groups] == [
        ("a fox", (finished, partial)),
        ("a cat", (other,)),
    ]
    fox = groups[0]
    assert np.array_equal(fox.items[0], image)
    assert fox.items[1] == b"checkpoint 1"


def test_ordered_sorts_by_each_key_and_refuses_an_unknown_one():
    from studio.document.scores import VersionScores
    from studio.protocol import ScoreSetting

    setting = ScoreSetting("m", "", 8, 2, 0)
    scores = {
        "a": VersionScores(setting, 0.3, 1.0),
        "b": VersionScores(setting, 0.1, 3.0),
        "c": VersionScores(setting, 0.2, 2.0),
    }
    assert ordered(scores, ["a", "b", "c", "gone"], "fidelity", 0.5) == ["a", "c", "b"]
    assert ordered(scores, ["a", "b", "c"], "novelty", 0.5) == ["b", "c", "a"]
    assert ordered(scores, ["a", "b", "c"], "combined", 0.0) == ["a", "c", "b"]
    assert ordered(scores, ["a", "b", "c"], "combined", 1.0) == ["b", "c", "a"]
    with pytest.raises(ValueError):
        ordered(scores, ["a"], "beauty", 0.5)


@pytest.fixture
def session(qapp, qtbot, tiny_model_dir):
    made = Session(_tiny_worker(), str(tiny_model_dir))
    with qtbot.waitSignal(
        made.message_handled, timeout=60_000, check_params_cb=lambda m: isinstance(m, ModelLoaded)
    ):
        made.start()
    yield made
    assert made.shutdown()


def test_scoring_versions_fills_scores_with_progress_and_repeats_exactly(
    qtbot, session, tiny_model_dir
):
    ids = []
    for seed in (1, 2):
        with qtbot.waitSignal(
            session.message_handled,
            timeout=60_000,
            check_params_cb=lambda m: isinstance(m, JobFinished),
        ) as finished:
            session.generate(_recipe(str(tiny_model_dir), seed=seed))
        ids.append(finished.args[0].version_id)
    progress = []
    session.score_progress.connect(progress.append)

    with qtbot.waitSignal(session.scores_changed, timeout=60_000):
        job_ids = session.score(ids, timesteps=2, noises=1)
    assert len(job_ids) == 1 and not session.score_jobs
    assert progress[0] == (0, 2) and progress[-1] is None and (2, 2) in progress
    first = {vid: (s.fidelity, s.novelty, s.context_novelty) for vid, s in session.scores.items()}
    assert set(first) == set(ids)
    assert session.tree.scores(ids[0]) is session.scores[ids[0]]
    assert session.scores[ids[0]].setting.timesteps == 2
    assert first[ids[0]][0] != first[ids[1]][0]
    assert all(context is not None for _, _, context in first.values())

    with qtbot.waitSignal(session.scores_changed, timeout=60_000):
        session.score(ids, timesteps=2, noises=1)
    again = {vid: (s.fidelity, s.novelty, s.context_novelty) for vid, s in session.scores.items()}
    assert again == first

    with qtbot.waitSignal(session.scores_changed, timeout=60_000):
        session.score(ids[:1], timesteps=2, noises=1)
    alone = session.scores[ids[0]]
    assert (alone.fidelity, alone.novelty) == first[ids[0]][:2]
    assert alone.context_novelty is None


def test_plugin_values_land_on_the_versions_and_outlive_a_score_without_them(
    qtbot, session, tiny_model_dir, tiny_clip_dir
):
    with qtbot.waitSignal(
        session.message_handled,
        timeout=60_000,
        check_params_cb=lambda m: isinstance(m, JobFinished),
    ) as finished:
        session.generate(_recipe(str(tiny_model_dir), seed=3))
    vid = finished.args[0].version_id
    spec = PluginSpec("clip", str(tiny_clip_dir))

    with qtbot.waitSignal(session.scores_changed, timeout=60_000):
        session.score([vid], timesteps=2, noises=1, plugins=[spec])
    (value,) = session.scores[vid].plugins
    assert value.name == "clip" and value.setting == plugin_setting(spec)
    assert value.setting.startswith("clip clip ") and len(value.setting.split()[-1]) == 12

    with qtbot.waitSignal(session.scores_changed, timeout=60_000):
        session.score([vid], timesteps=1, noises=1)
    assert session.scores[vid].setting.timesteps == 1
    assert session.scores[vid].plugins == (value,)  # recomputed only when asked
