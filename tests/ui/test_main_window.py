"""The studio window driven as a user would: generate, cancel, scrub, branch, undo, close."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer

from studio.protocol import Decoded, JobStarted
from tests.ui.conftest import (
    GENERATION_TIMEOUT_MS,
    generate_and_wait,
    own_steps,
    result_of,
    set_small_recipe,
)

ROOT = Path(__file__).resolve().parents[2]


def test_window_modules_do_not_import_torch():
    code = (
        "import sys; import studio.app, studio.ui.main_window, studio.workers.local; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_panel_offers_the_samplers_users_know_and_each_runs(qtbot, window):
    offered = [window.panel.sampler.itemText(i) for i in range(window.panel.sampler.count())]
    assert offered == [
        "Euler",
        "Euler a",
        "DDIM",
        "DPM++ 2M",
        "DPM++ 2M Karras",
        "UniPC",
        "DPM++ 2M SDE",
        "DPM++ 2M SDE Karras",
    ]
    set_small_recipe(window, steps=2)
    window.panel.sampler.setCurrentText("DPM++ 2M SDE Karras")
    version = generate_and_wait(qtbot, window)
    assert version.recipe.sampler == "DPM++ 2M SDE Karras" and not version.partial


def test_status_bar_names_the_device_once_loaded(window):
    assert "CPU" in window.model_label.text()
    assert "float32" in window.model_label.text()
    # the tiny test model ships no preview decoder: the status says which preview is in use
    assert "preview: linear map" in window.model_label.text()


def test_the_model_picker_names_the_preview_in_use(qtbot, window, tiny_model_dir, tmp_path):
    import shutil

    from tests.tiny_models import build_tiny_preview_decoder
    from tests.ui.conftest import open_window

    note = window.panel.preview_note
    assert note.isVisibleTo(window.panel) and note.text() == "Preview: linear map"
    with_decoder = tmp_path / "with-decoder"
    shutil.copytree(tiny_model_dir, with_decoder)
    build_tiny_preview_decoder(with_decoder / "preview_decoder")
    other = open_window(qtbot, with_decoder, tmp_path / "other.ini")
    try:
        assert other.panel.preview_note.text() == "Preview: tiny decoder (preview_decoder)"
    finally:
        other.close()


def test_generate_streams_a_preview_per_step_and_ends_on_the_full_decode(qtbot, window):
    shown: list[int] = []
    window.session.tree.step_appended.connect(lambda _vid, index: shown.append(index))
    version = generate_and_wait(qtbot, window)
    assert shown == list(range(6))
    assert version.step_indices == list(range(6))
    assert all(
        s.preview_x0.dtype == np.uint8 and s.preview_x0.ndim == 3
        for s in own_steps(window, version)
    )
    assert result_of(window, version) is not None and result_of(window, version).shape == (
        32,
        32,
        3,
    )
    assert not version.partial
    assert window.timeline.count() == 6
    assert window.timeline.label.text() == "step 6 / 6"
    assert window.canvas.current_array() is result_of(window, version)
    assert "full decode" in window.version_view.caption.text()
    assert window.session.undo_stack.count() == 1
    assert window.versions.item(version.id) is not None


def test_ctrl_enter_generates_from_the_prompt_field(qtbot, window):
    window.activateWindow()
    window.panel.prompt.setFocus()
    with qtbot.waitSignal(
        window.session.message_handled, check_params_cb=lambda m: isinstance(m, JobStarted)
    ):
        qtbot.keyClick(window.panel.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    with qtbot.waitSignal(window.session.tree.version_finished, timeout=GENERATION_TIMEOUT_MS):
        pass
    assert window.panel.prompt.toPlainText() == "a red fox in the snow"  # no newline typed


def test_invalid_recipe_is_explained_in_the_panel(qtbot, window):
    window.panel.width_box.setValue(33)
    assert window.generate() is None
    assert "multiple of 2" in window.panel.error_text()


def test_cancel_keeps_completed_steps_and_marks_the_version_partial(qtbot, window):
    set_small_recipe(window, steps=400)
    with qtbot.waitSignal(window.session.tree.step_appended, timeout=GENERATION_TIMEOUT_MS):
        window.generate()
    with qtbot.waitSignal(
        window.session.tree.version_finished, timeout=GENERATION_TIMEOUT_MS
    ) as blocker:
        window.actions_.cancel.trigger()
    version = window.session.tree.get(blocker.args[0])
    assert version.partial
    assert 1 <= len(version.step_indices) < 400
    assert result_of(window, version) is None
    assert window.timeline.count() == len(version.step_indices)
    assert window.canvas.current_array() is own_steps(window, version)[-1].preview_x0
    assert "partial" in window.version_view.caption.text()
    assert window.session.undo_stack.count() == 1


def test_scrubbing_shows_stored_previews_then_a_full_decode(qtbot, window):
    version = generate_and_wait(qtbot, window)
    window.timeline.set_position(2)
    assert window.canvas.current_array() is own_steps(window, version)[2].preview_x0
    assert window.timeline.label.text() == "step 3 / 6"
    with qtbot.waitSignal(
        window.session.message_handled, check_params_cb=lambda m: isinstance(m, Decoded)
    ):
        pass  # the debounced full decode of the settled step
    qtbot.waitUntil(lambda: "full decode" in window.version_view.caption.text())
    full = window.canvas.current_array()
    assert full.shape == (32, 32, 3)
    assert not np.array_equal(full, result_of(window, version))

    window.actions_.static.setChecked(True)
    assert window.canvas.current_array() is own_steps(window, version)[2].preview_xt
    assert "static x_t" in window.version_view.caption.text()
    window.actions_.static.setChecked(False)

    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Home)
    assert window.timeline.position() == 0
    qtbot.keyClick(window.canvas, Qt.Key.Key_Right)
    assert window.timeline.position() == 1
    assert window.canvas.current_array() is own_steps(window, version)[1].preview_x0
    qtbot.keyClick(window.canvas, Qt.Key.Key_End)
    assert window.canvas.current_array() is result_of(window, version)


def test_play_runs_from_static_to_image(qtbot, window):
    generate_and_wait(qtbot, window)
    window.timeline.set_position(5)
    seen: list[int] = []
    window.timeline.position_changed.connect(seen.append)
    window.timeline.play_button.setChecked(True)
    qtbot.waitUntil(lambda: not window.timeline.play_button.isChecked(), timeout=5000)
    assert seen == [0, 1, 2, 3, 4, 5]


def test_unchanged_branch_reproduces_the_parent_exactly(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    window.timeline.set_position(2)
    window.timeline.branch_button.click()
    assert window.panel.branch_target() is not None
    assert not window.panel.steps.isEnabled()
    child = generate_and_wait(qtbot, window)
    assert child.parent_id == parent.id and child.branch_step == 2
    assert child.step_indices == [3, 4, 5]
    assert [s.index for s in window.session.tree.trajectory(child.id)] == list(range(6))
    assert np.array_equal(result_of(window, child), result_of(window, parent))
    assert window.versions.item(child.id).text(1) == f"from step 3 of {parent.name}"
    assert window.versions.item(child.id).parent() is window.versions.item(parent.id)


def test_changed_branch_gives_a_different_image(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    window.branch_from_position(1)
    window.panel.prompt.setPlainText("a blue boat on a lake")
    window.panel.guidance.setValue(9.0)
    child = generate_and_wait(qtbot, window)
    assert child.parent_id == parent.id
    assert child.recipe.prompt == "a blue boat on a lake"
    assert not np.array_equal(result_of(window, child), result_of(window, parent))
    # the first two steps are shared with the parent
    assert window.session.tree.trajectory(child.id)[1] == (parent.id, 1)
    assert window.session.tree.step(child.id, 1) is own_steps(window, parent)[1]


def test_renoised_branch_differs_from_its_parent(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    window.branch_from_position(2)
    window.panel.renoise_seed.setText("99")
    window.panel.renoise_strength.setValue(0.5)
    child = generate_and_wait(qtbot, window)
    assert child.recipe.renoise_strength == 0.5
    assert not np.array_equal(result_of(window, child), result_of(window, parent))


def test_undo_and_redo_of_versions(qtbot, window):
    first = generate_and_wait(qtbot, window)
    window.panel.seed.setText("99")
    second = generate_and_wait(qtbot, window)
    assert [v.id for v in window.session.tree.versions()] == [first.id, second.id]

    window.actions_.undo.trigger()
    assert second.id not in window.session.tree and window.versions.item(second.id) is None
    window.actions_.redo.trigger()
    assert (
        window.session.tree.get(second.id) is second and window.versions.item(second.id) is not None
    )

    window.session.rename_version(first.id, "sunrise")
    assert window.versions.item(first.id).text(0) == "sunrise"
    window.session.delete_version(first.id)
    assert first.id not in window.session.tree
    assert [
        c.text()
        for c in map(window.session.undo_stack.command, range(window.session.undo_stack.count()))
    ] == [
        "Generate v1",
        "Generate v2",
        "Rename v1 to sunrise",
        "Delete sunrise",
    ]
    window.activateWindow()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.session.tree.get(first.id).name == "sunrise"
    window.actions_.undo.trigger()
    assert window.session.tree.get(first.id).name == "v1"
    qtbot.keyClick(
        window.canvas,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert window.session.tree.get(first.id).name == "sunrise"
    assert window.history.model().rowCount() == 5  # "<start>" plus four commands


def test_deleting_a_parent_removes_its_branches_and_undo_restores_them(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    window.branch_from_position(3)
    child = generate_and_wait(qtbot, window)
    asked: list[tuple[str, int]] = []
    answers = [False, True]
    window.version_actions.ask_delete_with_branches = lambda name, n: (
        asked.append((name, n)) or answers.pop(0)
    )
    window.versions.select(parent.id)
    window.actions_.delete.trigger()
    assert asked == [("v1", 1)] and len(window.session.tree) == 2, "declined: nothing deleted"
    window.actions_.delete.trigger()
    assert len(window.session.tree) == 0
    assert window.session.undo_stack.undoText() == "Delete v1 and its 1 branch"
    assert window.canvas.current_array() is None
    window.actions_.undo.trigger()
    assert window.session.tree.get(child.id).parent_id == parent.id
    assert window.versions.item(child.id).parent() is window.versions.item(parent.id)


def test_compare_two_versions_side_by_side_and_ab(qtbot, window):
    first = generate_and_wait(qtbot, window)
    window.panel.seed.setText("7")
    second = generate_and_wait(qtbot, window)
    window.session.compare(first.id, second.id)
    assert window.stack.currentWidget() is window.compare
    assert window.compare.shown_names() == ["v1 · step 6 / 6", "v2 · step 6 / 6"]
    assert window.compare.left.current_array() is result_of(window, first)
    assert window.compare.right.current_array() is result_of(window, second)
    window.compare.flip()
    assert window.compare.shown_names() == ["v2 · step 6 / 6"]
    assert window.compare.left.current_array() is result_of(window, second)
    window.compare.close_button.click()
    assert window.stack.currentIndex() == 0
    window.session.compare(first.id, second.id)
    window.actions_.undo.trigger()  # v2 goes away: the comparison closes with it
    assert window.stack.currentIndex() == 0


def test_closing_during_a_generation_stops_the_worker(qtbot, window):
    set_small_recipe(window, steps=500)
    with qtbot.waitSignal(window.session.tree.step_appended, timeout=GENERATION_TIMEOUT_MS):
        window.generate()
    assert window.session.client.is_running
    window.close()
    assert not window.session.client.is_running


def test_heartbeat_keeps_ticking_during_a_generation(qtbot, window):
    """The UI thread keeps serving timers while the worker computes (timings: tests/bench/bench_heartbeat.py)."""
    ticks_between_steps: list[int] = []
    ticks = [0]
    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: ticks.__setitem__(0, ticks[0] + 1))
    window.session.tree.step_appended.connect(lambda *_: ticks_between_steps.append(ticks[0]))
    heartbeat.start()
    set_small_recipe(window, steps=12)
    generate_and_wait(qtbot, window)
    heartbeat.stop()
    assert len(ticks_between_steps) == 12
    # A UI thread that waited on the worker would get the steps in one burst, with no tick
    # between them; here the timer keeps firing between steps as they arrive.
    ticked = sum(b > a for a, b in itertools.pairwise(ticks_between_steps))
    assert ticked >= 3, ticks_between_steps


def test_main_opens_the_window_on_the_qasync_loop_and_exits_cleanly(tiny_model_dir, tmp_path):
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path),  # the window saves its layout there
        "QT_QPA_PLATFORM": "offscreen",
        "NOISE_STUDIO_STARTUP_PROBE": "quit",
        "NOISE_STUDIO_TORCH_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, "main.py", "--model", str(tiny_model_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("window-painted ")
    assert "QThread" not in out.stderr


def test_delete_key_in_the_versions_panel_deletes_the_selected_version(qtbot, window):
    version = generate_and_wait(qtbot, window)
    window.activateWindow()
    window.versions.select(version.id)
    window.versions.view.setFocus()
    qtbot.keyClick(window.versions.view, Qt.Key.Key_Delete)
    assert version.id not in window.session.tree
    assert window.session.undo_stack.undoText() == "Delete v1"


def test_branching_from_the_last_step_decodes_the_same_image(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    window.branch_from_position(5)
    child = generate_and_wait(qtbot, window)
    assert child.step_indices == [] and child.branch_step == 5
    assert len(window.session.tree.trajectory(child.id)) == 6
    assert np.array_equal(result_of(window, child), result_of(window, parent))
