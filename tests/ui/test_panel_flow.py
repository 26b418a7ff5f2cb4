"""The prompt panel as a new user meets it in the real window: typed seeds are kept, branch
mode gives the seed mode back, out-of-range numbers are refused as typed, sizes far from
the model's are warned about and sizes the device cannot hold are refused, unknown words
are marked, the token counter keeps one convention and Cancel answers at once."""

from __future__ import annotations

from PySide6.QtCore import Qt

from studio.protocol import JobCancelled, JobStarted, PromptInfo
from studio.ui.prompt_panel import PromptPanel
from tests.ui.conftest import generate_and_wait, open_window


def type_into(qtbot, widget, text: str) -> None:
    widget.setFocus()
    widget.selectAll()
    qtbot.keyClicks(widget, text)


def test_a_typed_seed_is_the_seed_used(qtbot, window):
    panel = window.panel
    panel.seed_random.setChecked(True)
    type_into(qtbot, panel.seed, "12345")
    assert not panel.seed_random.isChecked() and panel.seed_random.text() == "fixed"
    version = generate_and_wait(qtbot, window)
    assert version.recipe.seed == 12345


def test_leaving_branch_mode_gives_back_the_random_seed_mode(qtbot, window):
    panel = window.panel
    panel.seed_random.setChecked(True)
    generate_and_wait(qtbot, window)
    window.branch_from_position(window.session.view.position)
    assert panel.branch_target() is not None
    assert not panel.seed_random.isChecked()  # a branch keeps its parent's seed
    qtbot.mouseClick(panel.branch_leave, Qt.MouseButton.LeftButton)
    assert panel.seed_random.isChecked()
    seeds = {generate_and_wait(qtbot, window).recipe.seed for _ in range(2)}
    assert len(seeds) == 2


def test_out_of_range_numbers_are_refused_as_typed(qtbot, window):
    panel = window.panel
    type_into(qtbot, panel.steps.lineEdit(), "1001")
    assert panel.steps.value() == 1001  # kept as typed, not cut to 100
    qtbot.waitUntil(lambda: "1001" in panel.error_text())
    assert "Steps" in panel.error_text() and "1000" in panel.error_text()
    assert window.generate() is None and not window.session.jobs
    type_into(qtbot, panel.guidance.lineEdit(), "60")
    panel.steps.setValue(6)
    qtbot.waitUntil(lambda: "CFG" in panel.error_text())
    assert panel.guidance.value() == 60
    assert window.generate() is None
    panel.guidance.setValue(5.0)
    qtbot.waitUntil(lambda: panel.error_text() == "")


def test_a_size_far_from_native_is_warned_and_one_too_big_is_refused(
    qtbot, tiny_model_dir, tmp_path, monkeypatch
):
    from studio.engine import memory

    monkeypatch.setattr(memory, "_available_ram", lambda: 2**30)
    win = open_window(qtbot, tiny_model_dir, tmp_path / "settings.ini")
    try:
        panel, budget = win.panel, win.session.model.budget
        assert budget.native_size == 16 and budget.device_bytes == 2**30
        assert not panel.size_note.isVisibleTo(panel)
        panel.width_box.setValue(256)
        assert panel.size_note.isVisibleTo(panel) and "16×16" in panel.size_note.text()
        panel.width_box.setValue(4096)
        panel.height_box.setValue(4096)
        assert "needs about" in panel.size_note.text()
        assert win.generate() is None and not win.session.jobs
        assert "needs about" in panel.error_text() and "1.0 GB" in panel.error_text()
    finally:
        win.close()


def test_unknown_words_are_underlined_and_listed(qtbot, window):
    panel = window.panel
    with qtbot.waitSignal(
        window.session.message_handled,
        check_params_cb=lambda m: isinstance(m, PromptInfo) and m.text == "a Fox",
    ):
        panel.prompt.setPlainText("a Fox")
    # The tiny model's vocabulary is single characters: no word of two or more is known.
    assert panel.unknown_words_marked(panel.prompt) == ["Fox"]
    assert "unknown to this model: fox" in panel.prompt_tokens.text()
    panel.prompt.setPlainText("a b")
    assert panel.unknown_words_marked(panel.prompt) == []


def test_the_token_counter_keeps_one_convention(qtbot, window):
    fresh = PromptPanel()
    qtbot.addWidget(fresh)
    before = fresh.prompt_tokens.text()
    with qtbot.waitSignal(
        window.session.message_handled,
        check_params_cb=lambda m: isinstance(m, PromptInfo) and m.text == "",
    ):
        window.panel.prompt.setPlainText("")
    assert window.panel.prompt_tokens.text() == before == "0 / 75 tokens"
    fresh.prompt.setPlainText("a b c")
    assert fresh.prompt_tokens.text() == "≈3 / 75 tokens"


def test_cancel_says_cancelling_at_once(qtbot, window):
    window.panel.steps.setValue(1000)
    with qtbot.waitSignal(
        window.session.message_handled, check_params_cb=lambda m: isinstance(m, JobStarted)
    ):
        job_id = window.generate()
    qtbot.waitUntil(lambda: "running" in window.queue.item(0).text())
    with qtbot.waitSignal(
        window.session.message_handled,
        timeout=60_000,
        check_params_cb=lambda m: isinstance(m, JobCancelled),
    ):
        window.panel.cancel_button.click()
        # Before the worker answers: the status bar and the queue say so.
        assert window.statusBar().currentMessage() == "Cancelling…"
        assert "cancelling" in window.queue.item(0).text()
        assert f"#{job_id}" in window.queue.item(0).text()
    assert window.statusBar().currentMessage().startswith("Cancelled after")
    qtbot.waitUntil(lambda: window.queue.item(0).text() == "No jobs.")
