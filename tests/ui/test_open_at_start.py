"""A ``.studio`` named on the command line (a double-click in the file manager) opens at start."""

from __future__ import annotations

from tests.ui.conftest import open_window
from tests.ui.test_project_flow import Answers, attach_session


def test_a_project_named_at_start_opens_and_a_bad_one_falls_back_to_untitled(
    qtbot, tiny_model_dir, tmp_path
):
    folder = tmp_path / "recovery"
    saved = tmp_path / "my work.studio"
    first = open_window(qtbot, tiny_model_dir, tmp_path / "a.ini")
    session = attach_session(first, folder, Answers())
    session.start()
    assert session.save_as(saved) and saved.is_file()
    first.close()

    answers = Answers()
    window = open_window(qtbot, tiny_model_dir, tmp_path / "b.ini")
    session = attach_session(window, folder, answers)
    session.start(project=str(saved))
    assert session.project is not None and session.project.path == saved
    assert session.lock is None and answers.errors == [] and answers.offered == []
    window.close()

    answers = Answers()
    window = open_window(qtbot, tiny_model_dir, tmp_path / "c.ini")
    session = attach_session(window, folder, answers)
    session.start(project=tmp_path / "missing.studio")
    assert len(answers.errors) == 1 and "missing.studio" in answers.errors[0]
    assert session.project is not None and session.lock is not None  # untitled work
    window.close()
