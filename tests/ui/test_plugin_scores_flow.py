"""Scorer plug-ins in the real window: configured in a dialog, shown in the Scores dock,
ordering the Versions panel, and read back from the project without rescoring."""

from __future__ import annotations

from studio.ui.plugin_settings import CLIP_KEY
from tests.ui.test_project_flow import Answers, attach_session, reopened_window
from tests.ui.test_scores_flow import _score_selected, _three_versions


def _by_clip(window) -> None:
    order = window.versions.order
    index = order.findData("plugin:clip")
    assert index >= 0 and order.itemText(index) == "By clip"
    order.setCurrentIndex(index)


def test_a_clip_plugin_scores_shows_orders_and_survives_reopening(
    qtbot, window, tmp_path, tiny_model_dir, tiny_clip_dir
):
    projects = attach_session(window, tmp_path / "recovery", Answers())
    projects.start()
    dialog = window.scores.edit_plugins()
    dialog.clip.setText(str(tmp_path))  # not a CLIP folder: refused in a sentence
    dialog.accept()
    assert dialog.isVisible() and dialog.message.text().endswith(".")
    assert not window.settings.value(CLIP_KEY, "")
    dialog.clip.setText(str(tiny_clip_dir))
    dialog.accept()
    assert not dialog.isVisible() and dialog.message.text() == ""
    assert window.settings.value(CLIP_KEY) == str(tiny_clip_dir)

    versions = _three_versions(qtbot, window)
    assert window.versions.order.findData("plugin:clip") == -1, "offered once a value exists"
    view = _score_selected(qtbot, window, versions)
    scores = window.session.scores
    clip = {v.id: scores[v.id].plugin("clip") for v in versions}
    assert all(value is not None for value in clip.values())
    texts = [view.list.item(i).text() for i in range(view.list.count())]
    assert all(" · clip " in text for text in texts)
    assert f"clip {clip[versions[0].id]:.1f}" in " ".join(texts)

    _by_clip(window)
    expected = sorted(clip, key=lambda v: -clip[v])
    assert window.versions.shown_order() == expected
    target = tmp_path / "clip.studio"
    assert projects.save_as(target)
    window.close()

    with reopened_window(qtbot, target, tiny_model_dir, tmp_path) as (reopened, _projects):
        session = reopened.session
        assert {v: session.scores[v].plugin("clip") for v in clip} == clip
        assert session.scores[expected[0]].plugins[0].setting.startswith("clip clip ")
        _by_clip(reopened)
        assert reopened.versions.shown_order() == expected
        qtbot.waitUntil(lambda: reopened.scores.view.list.count() == 3)
        tip = reopened.scores.view.list.item(0).toolTip()
        assert " · clip " in tip
        qtbot.wait(50)
        assert not session.score_jobs, "nothing was rescored"
