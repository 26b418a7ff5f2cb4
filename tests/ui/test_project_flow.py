"""Project files in the window: untitled work, Save As, reopen, crash restore, bad files, closing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from studio.document.store import ProjectStore
from studio.ui.main_window import MainWindow
from studio.ui.project_menu import Choice, ProjectSession
from tests.ui.conftest import drag_enter_event, generate_and_wait, open_window, own_steps, result_of

ROOT = Path(__file__).resolve().parents[2]


class Answers:
    """Scripted answers to the session's questions, and the errors it showed."""

    def __init__(self) -> None:
        self.restore = Choice.RESTORE
        self.keep_untitled = Choice.DISCARD
        self.save_path: str | None = None
        self.errors: list[str] = []
        self.offered: list[Path] = []
        self.asked_keep = 0


def attach_session(window: MainWindow, folder: Path, answers: Answers) -> ProjectSession:
    session = ProjectSession(window.session, window, window.settings, recovery_folder=folder)
    window.attach_projects(session)  # as the app does

    def ask_restore(entry):
        answers.offered.append(entry.path)
        return answers.restore

    def ask_keep():
        answers.asked_keep += 1
        return answers.keep_untitled

    session.ask_restore = ask_restore
    session.ask_keep_untitled = ask_keep
    session.ask_save_path = lambda: answers.save_path
    session.ask_open_path = lambda: None
    session.show_error = answers.errors.append
    return session


@contextlib.contextmanager
def reopened_window(
    qtbot, target: Path, model_dir: Path, tmp_path: Path
) -> Iterator[tuple[MainWindow, ProjectSession]]:
    """The saved project ``target`` opened in a second window, closed afterwards."""
    window = open_window(qtbot, model_dir, tmp_path / "settings2.ini")
    projects = attach_session(window, tmp_path / "recovery2", Answers())
    projects.start()
    try:
        assert projects.open_project(target)
        yield window, projects
    finally:
        window.close()


@pytest.fixture
def answers() -> Answers:
    return Answers()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "recovery"


@pytest.fixture
def session(window: MainWindow, folder: Path, answers: Answers) -> Iterator[ProjectSession]:
    session = attach_session(window, folder, answers)
    session.start()
    yield session
    window.close()
    assert session.project is None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_new_window_works_on_an_untitled_project_in_the_recovery_folder(session, window, folder):
    assert window.windowTitle() == "Untitled — Noise Studio"
    assert session.lock is not None and session.project.path.parent == folder
    assert session.project.path.exists()


def test_project_persists_across_close_and_reopen(
    qtbot, window, session, answers, tmp_path, tiny_model_dir
):
    parent = generate_and_wait(qtbot, window)
    untitled = session.project.path
    target = tmp_path / "fox.studio"
    assert session.save_as(target)
    assert window.windowTitle() == "fox — Noise Studio"
    assert session.lock is None and not untitled.exists(), "the untitled copy is removed"
    assert session.recent_projects()[0] == str(target)

    window.panel.seed.setText("77")
    second = generate_and_wait(qtbot, window)  # written to the saved file as it happens
    parent_result = result_of(window, parent)
    parent_step_3 = own_steps(window, parent)[2].preview_x0
    window.close()
    assert session.project is None and answers.asked_keep == 0, "a titled project needs no question"

    reopened = open_window(qtbot, tiny_model_dir, tmp_path / "settings2.ini")
    other = attach_session(reopened, tmp_path / "recovery2", Answers())
    other.start()
    try:
        assert other.open_project(target)
        assert reopened.windowTitle() == "fox — Noise Studio"
        versions = reopened.session.tree.versions()
        assert [v.id for v in versions] == [parent.id, second.id]
        loaded = reopened.session.tree.get(parent.id)
        assert loaded.step_indices == list(range(6))
        assert np.array_equal(result_of(reopened, loaded), parent_result)

        reopened.session.show_version(parent.id)
        reopened.timeline.set_position(2)
        assert np.array_equal(reopened.canvas.current_array(), parent_step_3)
        assert reopened.timeline.label.text() == "step 3 / 6"

        reopened.branch_from_position(2)  # resumes from a checkpoint read back from the file
        child = generate_and_wait(qtbot, reopened)
        assert child.parent_id == parent.id and child.branch_step == 2
        assert np.array_equal(result_of(reopened, child), parent_result)
    finally:
        reopened.close()
    with ProjectStore.open(target) as store:
        assert store.integrity_check() == "ok"
        assert len(store.versions()) == 3


_CRASHING_APP = textwrap.dedent(
    """
    import sys
    import torch
    from studio.document import recovery
    from studio.document.project import Project
    from studio.document.versions import VersionTree
    from studio.protocol import StepRecord
    from studio.engine.models import load_model
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler

    folder, model_dir = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)  # as the window's worker runs in the tests
    sampler = Sampler(load_model(model_dir, device="cpu"))
    store, lock = recovery.create_untitled(__import__("pathlib").Path(folder))
    tree = VersionTree()
    project = Project(store, tree)
    recipe = Recipe(prompt="a red fox in the snow", seed=1234, steps=6, guidance=5.0,
                    sampler="Euler a", width=32, height=32, model=model_dir)
    version = tree.new_version(recipe)
    tree.add(version)
    for step in sampler.run(recipe):
        tree.append_step(version.id, StepRecord(step.index, step.total, step.timestep, step.sigma,
                         step.checkpoint.to_bytes(), step.preview_x0, step.preview_xt))
    tree.finish(version.id, sampler.decode(step.latent), partial=False)
    store.flush()
    print(store.path, flush=True)
    sys.stdin.read()  # keep working until killed
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_untitled_work_is_restored_after_a_crash(qtbot, window, folder, answers, tiny_model_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOISE_STUDIO_TORCH_THREADS": "1"}
    app = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_APP, str(folder), str(tiny_model_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        line = app.stdout.readline().decode().strip()
        assert line, app.stderr.read().decode()[-2000:]
        crashed = Path(line)
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        for stream in (app.stdin, app.stdout, app.stderr):
            stream.close()
    assert crashed.exists()

    session = attach_session(window, folder, answers)
    session.start()
    assert answers.offered == [crashed]
    assert session.project.path == crashed and session.lock is not None
    assert window.windowTitle() == "Untitled — Noise Studio"
    (restored,) = window.session.tree.versions()
    assert restored.step_indices == list(range(6))
    assert window.canvas.current_array() is result_of(window, restored)
    assert window.panel.recipe().prompt == "a red fox in the snow", "the panel carries on"

    window.branch_from_position(3)
    child = generate_and_wait(qtbot, window)
    assert np.array_equal(result_of(window, child), result_of(window, restored))

    answers.keep_untitled = Choice.DISCARD
    window.close()
    assert answers.asked_keep == 1
    assert not crashed.exists(), "discarded untitled work is removed on a clean exit"


def test_choosing_not_now_keeps_crashed_work_for_the_next_launch(window, folder, answers):
    from studio.document import recovery

    store, lock = recovery.create_untitled(folder)
    store.add_version(recipe_json='{"prompt": "p"}', name="v1").result()
    store.close()
    lock.release(remove_project=False)  # as if the app had died

    answers.restore = Choice.LATER
    session = attach_session(window, folder, answers)
    session.start()
    assert answers.offered == [store.path]
    assert session.project.path != store.path and len(window.session.tree) == 0
    window.close()
    assert store.path.exists()
    assert [e.path for e in recovery.recoverable_projects(folder)] == [store.path]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_opening_a_bad_file_explains_and_leaves_it_untouched(
    session, window, answers, tmp_path, damage
):
    bad = tmp_path / "bad.studio"
    if damage == "garbage":
        bad.write_bytes(b"this is not a project at all" * 100)
    else:
        with ProjectStore.create(bad) as store:
            for n in range(20):
                store.add_version(recipe_json='{"prompt": "p"}', name=f"v{n}").result()
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    before = sha256(bad)
    current = session.project.path

    assert not session.open_project(bad)
    assert len(answers.errors) == 1
    message = answers.errors[0]
    assert "bad.studio" in message and message.count(".") <= 3  # one sentence naming the file
    assert sha256(bad) == before
    assert not Path(f"{bad}-wal").exists() and not Path(f"{bad}-journal").exists()
    assert session.project.path == current, "the open project stays open"


def test_closing_untitled_work_asks_and_cancel_keeps_the_window_open(
    qtbot, window, session, answers, tmp_path
):
    generate_and_wait(qtbot, window)
    untitled = session.project.path
    answers.keep_untitled = Choice.CANCEL
    window.close()
    assert window.isVisible() and answers.asked_keep == 1
    assert session.project is not None and untitled.exists()

    answers.keep_untitled = Choice.SAVE
    answers.save_path = str(tmp_path / "kept")
    window.close()
    assert not window.isVisible()
    assert not untitled.exists()
    with ProjectStore.open(tmp_path / "kept.studio") as store:
        assert [v.name for v in store.versions()] == ["v1"]


def test_new_starts_an_empty_untitled_project_and_names_from_v1(qtbot, window, session, answers):
    generate_and_wait(qtbot, window)
    first = session.project.path
    assert session.new_project()
    assert answers.asked_keep == 1 and not first.exists()
    assert len(window.session.tree) == 0 and window.session.undo_stack.count() == 0
    assert window.canvas.current_array() is None
    assert session.project.path != first
    version = generate_and_wait(qtbot, window)
    assert version.name == "v1"


def test_open_recent_lists_saved_projects_and_opens_them(qtbot, window, session, tmp_path):
    generate_and_wait(qtbot, window)
    assert session.save_as(tmp_path / "one.studio")
    assert session.new_project()
    assert window.windowTitle() == "Untitled — Noise Studio" and len(window.session.tree) == 0
    session.recent_menu.aboutToShow.emit()
    (entry,) = session.recent_menu.actions()
    assert entry.text() == "one.studio"
    entry.trigger()
    assert window.windowTitle() == "one — Noise Studio"
    assert [v.name for v in window.session.tree.versions()] == ["v1"]


def test_a_full_disk_offers_save_as_and_the_work_carries_on_there(
    qtbot, window, session, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    generate_and_wait(qtbot, window)
    asked: list[str] = []

    def answer(_parent, _title, text, *_args):
        asked.append(text)
        return QMessageBox.StandardButton.Save

    monkeypatch.setattr(QMessageBox, "warning", answer)
    session.ask_save_path = lambda: str(tmp_path / "elsewhere.studio")
    session.project.write_failed.emit(
        "The disk is full; the last change was not saved.", "disk_full"
    )
    assert len(asked) == 1 and "still in memory" in asked[0]
    assert session.project.path == tmp_path / "elsewhere.studio" and session.lock is None
    assert window.windowTitle() == "elsewhere — Noise Studio"


def test_dropping_a_project_file_on_the_window_opens_it(qtbot, window, session, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent
    from PySide6.QtWidgets import QApplication

    with ProjectStore.create(tmp_path / "dropped.studio") as store:
        store.add_version(
            recipe_json='{"prompt": "a blue boat", "width": 32, "height": 32}', name="boat"
        ).result()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "dropped.studio"))])
    args = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = drag_enter_event(40, 40, *args)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(QPointF(40, 40), *args))
    qtbot.waitUntil(lambda: window.windowTitle() == "dropped — Noise Studio")
    assert [v.name for v in window.session.tree.versions()] == ["boat"]


# ---- hostile files: opening is all or nothing ---------------------------------------


def _project_with_a_cycle(path: Path) -> None:
    with ProjectStore.create(path) as store:
        a = store.add_version(recipe_json='{"prompt": "a"}', name="a").result()
        b = store.add_version(recipe_json='{"prompt": "b"}', name="b").result()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("UPDATE versions SET parent_id = ?, branch_step = 0 WHERE id = ?", (b, a))
    conn.execute("UPDATE versions SET parent_id = ?, branch_step = 0 WHERE id = ?", (a, b))
    conn.close()


def _project_with_a_bad_recipe(path: Path) -> None:
    with ProjectStore.create(path) as store:
        store.add_version(recipe_json='{"prompt": "a"}', name="fine").result()
        store.add_version(recipe_json='{"steps": "many"', name="broken").result()
        store.add_version(recipe_json='{"prompt": "c"}', name="gone").result()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE versions SET deleted = 1 WHERE name = 'gone'")  # as a crash left it
    conn.close()


def _project_whose_layer_needs_more_memory(path: Path, monkeypatch) -> None:
    with ProjectStore.create(path) as store:
        store.add_layer(pixels=np.zeros((4, 4, 4), np.uint8), name="huge").result()

    def out_of_memory(data: bytes):
        raise MemoryError

    monkeypatch.setattr("studio.document.project.decode_png", out_of_memory)


@pytest.mark.parametrize("damage", ["cycle", "bad recipe", "memory"])
def test_a_file_that_fails_to_open_leaves_the_current_project_open_and_bound(
    qtbot, window, session, answers, tmp_path, monkeypatch, damage
):
    version = generate_and_wait(qtbot, window)
    current, title = session.project.path, window.windowTitle()
    bad = tmp_path / "bad.studio"
    if damage == "cycle":
        _project_with_a_cycle(bad)
    elif damage == "bad recipe":
        _project_with_a_bad_recipe(bad)
    else:
        _project_whose_layer_needs_more_memory(bad, monkeypatch)
    before = sha256(bad)

    assert not session.open_project(bad)
    assert len(answers.errors) == 1 and "bad.studio" in answers.errors[0]
    assert answers.errors[0].count(". ") == 0, "one sentence"
    assert session.project is not None and session.project.path == current
    assert window.windowTitle() == title
    assert [v.id for v in window.session.tree.versions()] == [version.id]
    assert sha256(bad) == before, "the refused file was neither written nor purged"
    assert not Path(f"{bad}-lock").exists(), "the store just opened was closed"

    window.session.rename_version(version.id, "still saved")  # edits still reach the file
    session.project.store.flush()
    assert session.project.store.version(version.id).name == "still saved"


def test_a_stray_journal_is_named_and_the_file_opens_untouched_if_the_user_agrees(
    window, session, answers, tmp_path
):
    path = tmp_path / "healthy.studio"
    with ProjectStore.create(path) as store:
        store.add_version(recipe_json='{"prompt": "a"}', name="kept").result()
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (randomblob(9000))")
    Path(f"{path}-wal").write_bytes(Path(f"{other}-wal").read_bytes())
    conn.close()
    before = sha256(path)
    asked: list[str] = []
    agree = [False]

    def ask(problem: str) -> bool:
        asked.append(problem)
        return agree[0]

    session.ask_open_without_journal = ask
    assert not session.open_project(path)
    assert len(asked) == 1 and "does not belong" in asked[0] and not answers.errors
    assert sha256(path) == before and Path(f"{path}-wal").exists()

    agree[0] = True
    assert session.open_project(path)
    assert [v.name for v in window.session.tree.versions()] == ["kept"]
    assert list(tmp_path.glob("healthy.studio-wal.foreign-*")), "the journal is kept aside"


_HOLDING_APP = textwrap.dedent(
    """
    import sys
    from studio.document.store import ProjectStore
    store = ProjectStore.open(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.read()
    """
)


def test_a_project_another_process_holds_is_offered_as_a_copy_and_never_overwritten(
    qtbot, window, session, answers, tmp_path, folder
):
    held = tmp_path / "held.studio"
    with ProjectStore.create(held) as store:
        store.add_version(recipe_json='{"prompt": "theirs"}', name="theirs").result()
    other = subprocess.Popen(
        [sys.executable, "-c", _HOLDING_APP, str(held)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert other.stdout.readline() == b"holding\n", other.stderr.read().decode()[-2000:]
        before = sha256(held)
        offered: list[str] = []
        choice = [Choice.CANCEL]

        def ask(problem: str) -> Choice:
            offered.append(problem)
            return choice[0]

        session.ask_in_use = ask
        untitled = session.project.path
        assert not session.open_project(held)
        assert len(offered) == 1 and f"process {other.pid}" in offered[0]
        assert session.project.path == untitled

        generate_and_wait(qtbot, window)
        assert not session.save_as(held), "Save As never replaces a file another instance has"
        assert len(answers.errors) == 1 and "held.studio" in answers.errors[0]
        assert session.project.path == untitled

        choice[0] = Choice.COPY
        answers.keep_untitled = Choice.DISCARD
        assert session.open_project(held)
        assert [v.name for v in window.session.tree.versions()] == ["theirs"]
        assert session.lock is not None and session.project.path.parent == folder
        assert window.windowTitle() == "Untitled — Noise Studio"
        window.session.rename_version(window.session.tree.versions()[0].id, "mine")
        session.project.store.flush()
        assert sha256(held) == before, "the held file is left as it was"
    finally:
        other.kill()
        other.wait(10)
        for stream in (other.stdin, other.stdout, other.stderr):
            stream.close()


def test_after_a_crash_with_a_named_project_open_the_next_launch_reopens_it(
    qtbot, window, tmp_path, tiny_model_dir, answers
):
    first = attach_session(window, tmp_path / "recovery", answers)
    first.start()
    version = generate_and_wait(qtbot, window)
    answers.save_path = str(tmp_path / "named.studio")
    assert first.save_as()
    first._close_file()  # the process dies: the file is left, the clean shutdown never ran
    window.settings.sync()

    relaunched = open_window(qtbot, tiny_model_dir, Path(window.settings.fileName()))
    again = attach_session(relaunched, tmp_path / "recovery", Answers())
    offered: list[Path] = []
    again.ask_reopen = lambda path: offered.append(path) or Choice.RESTORE
    again.start()
    try:
        assert offered == [tmp_path / "named.studio"]
        assert again.project is not None and again.project.path == tmp_path / "named.studio"
        assert [v.id for v in relaunched.session.tree.versions()] == [version.id]
        assert relaunched.windowTitle() == "named — Noise Studio"
    finally:
        relaunched.close()
    third = open_window(qtbot, tiny_model_dir, Path(window.settings.fileName()))
    after_clean_close = attach_session(third, tmp_path / "recovery3", Answers())
    after_clean_close.ask_reopen = lambda path: pytest.fail("a clean close offers nothing")
    after_clean_close.start()
    third.close()


def test_ctrl_s_saves_untitled_work_as_and_confirms_a_named_project(
    qtbot, window, tmp_path, answers
):
    session = attach_session(window, tmp_path / "recovery", answers)
    session.start()
    generate_and_wait(qtbot, window)
    answers.save_path = str(tmp_path / "kept.studio")
    session.save_action.trigger()
    assert session.project.path == tmp_path / "kept.studio" and session.lock is None
    session.save_action.trigger()
    assert "saved" in window.statusBar().currentMessage()
    assert session.project.path == tmp_path / "kept.studio"


def test_export_names_untitled_work_untitled_and_a_saved_project_by_its_name(
    qtbot, window, tmp_path, answers
):
    session = attach_session(window, tmp_path / "recovery", answers)
    session.start()
    generate_and_wait(qtbot, window)
    assert session.project.path.parent == tmp_path / "recovery"  # named by a timestamp there
    assert window.exports.proposed_name("image", ".png") == "untitled-v1.png"
    answers.save_path = str(tmp_path / "my project.studio")
    session.save_action.trigger()
    assert window.exports.proposed_name("image", ".png") == "my-project-v1.png"


def test_a_project_recipe_with_a_huge_prompt_opens_cut_with_a_warning(
    qtbot, window, tmp_path, answers
):
    import json

    from studio.engine.recipe import MAX_PROMPT_CHARS, Recipe

    path = tmp_path / "huge.studio"
    with ProjectStore.create(path) as store:
        recipe = json.loads(Recipe("x", seed=1, width=32, height=32).to_json())
        recipe["prompt"] = "q" * 5_000_000
        store.add_version(recipe_json=json.dumps(recipe), name="v1").result()
    session = attach_session(window, tmp_path / "recovery", answers)
    session.start()
    assert session.open_project(path), answers.errors
    (version,) = window.session.tree.versions()
    assert len(version.recipe.prompt) == MAX_PROMPT_CHARS
    assert "cut" in window.statusBar().currentMessage()


CHAIN = 1200


def _project_with_a_chain_of_branches(path: Path) -> list[str]:
    """``CHAIN`` versions, each a branch after step 1 of the one before, with a result and a step."""
    from studio.document.imageio import encode_png
    from studio.engine.recipe import Recipe

    png = encode_png(np.full((8, 8, 3), 90, np.uint8))
    recipe = Recipe("a fox", steps=4, width=16, height=16).to_json()
    ids = [f"id{n:05d}" for n in range(CHAIN)]
    with ProjectStore.create(path) as store:

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO versions(id, parent_id, branch_step, name, recipe_json, created,"
                " result_png) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        ids[n],
                        ids[n - 1] if n else None,
                        0 if n else None,
                        f"v{n + 1}",
                        recipe,
                        n,
                        png,
                    )
                    for n in range(CHAIN)
                ],
            )
            conn.executemany(
                "INSERT INTO steps(version_id, idx, total, timestep, checkpoint, preview_x0, preview_xt)"
                " VALUES (?, ?, 4, 0, x'00', ?, ?)",
                [(ids[0], 0, png, png)] + [(ids[n], 1, png, png) for n in range(CHAIN)],
            )

        store.submit(write).result()
    return ids


def test_a_chain_of_1200_branches_opens_and_shows_without_redoing_the_panels_per_version(
    qtbot, window, session, tmp_path, monkeypatch
):
    from studio.ui import lineage_view, versions_panel

    ids = _project_with_a_chain_of_branches(tmp_path / "chain.studio")
    work = {"rows filled": 0, "layouts": 0}
    fill, layout = versions_panel.VersionsPanel._fill, lineage_view.lineage_graph

    def counted_fill(panel, item, version):
        work["rows filled"] += 1
        fill(panel, item, version)

    def counted_layout(tree):
        work["layouts"] += 1
        return layout(tree)

    monkeypatch.setattr(versions_panel.VersionsPanel, "_fill", counted_fill)
    monkeypatch.setattr(lineage_view, "lineage_graph", counted_layout)
    assert session.open_project(tmp_path / "chain.studio")
    qtbot.wait(50)  # the deferred column width and lineage layout
    # Once per version, not once per version for every version added before it (minutes).
    assert work["rows filled"] <= 2 * CHAIN and work["layouts"] <= 3, work

    window.session.show_version(ids[-1])
    window.session.view.set_position(0)  # the root's step, found up 1,200 parents
    window.session.view.set_position(1)
    assert window.lineage.view.graph.places[ids[-1]] == (CHAIN - 1, 0)
    assert window.versions.shown_order() == ids


def test_a_project_opened_with_the_panel_ranked_by_a_score_is_ranked_once(
    qtbot, window, session, tmp_path, monkeypatch
):
    from studio.ui.versions_panel import VersionsPanel

    _project_with_a_chain_of_branches(tmp_path / "chain.studio")
    window.scores.state.set_panel_key("fidelity")
    ranked = {"times": 0}
    show_ranked = VersionsPanel.show_ranked

    def counted(panel, version_ids):
        ranked["times"] += 1
        show_ranked(panel, version_ids)

    monkeypatch.setattr(VersionsPanel, "show_ranked", counted)
    assert session.open_project(tmp_path / "chain.studio")
    qtbot.wait(50)
    # Once for the burst (a few for the open's own resets), not once per version added.
    assert 1 <= ranked["times"] <= 5, ranked
    assert len(window.versions.shown_order()) == CHAIN
