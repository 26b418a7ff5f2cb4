"""The prompt panel as a new user meets it in the real window: the size starts at the model's
native size and follows a model the user picks, typed seeds are kept, branch
mode gives the seed mode back, out-of-range numbers are refused as typed, sizes far from
the model's are warned about and sizes the device cannot hold are refused, unknown words
are marked, the token counter keeps one convention and Cancel answers at once."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt

from studio.engine.recipe import BUNDLED_MODEL, Recipe
from studio.protocol import JobCancelled, JobStarted, ModelList, ModelLoaded, PromptInfo
from studio.session import Session
from studio.ui.main_window import MainWindow
from studio.ui.prompt_panel import PromptPanel
from studio.workers.local import LocalWorker
from tests.ui.conftest import GENERATION_TIMEOUT_MS, generate_and_wait, open_window


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


def started_window(qtbot, model_dir, settings_path, before_start=None) -> MainWindow:
    """A shown window whose first model has loaded, its size fields left as they came."""
    settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
    win = MainWindow(Session(LocalWorker(), str(model_dir)), settings)
    qtbot.addWidget(win)
    win.show()
    if before_start is not None:
        before_start(win)
    seen: list[type] = []
    win.session.message_handled.connect(lambda message: seen.append(type(message)))
    win.start_worker()
    qtbot.waitUntil(
        lambda: ModelLoaded in seen and ModelList in seen, timeout=GENERATION_TIMEOUT_MS
    )
    return win


def test_the_size_is_the_models_native_size_at_start_and_on_a_pick(qtbot, tiny_model_dir, tmp_path):
    win = started_window(qtbot, tiny_model_dir, tmp_path / "settings.ini")
    panel = win.panel
    try:
        assert (panel.width_box.value(), panel.height_box.value()) == (16, 16)  # not 64
        panel.width_box.setValue(40)
        index = panel.model.findData(BUNDLED_MODEL)
        with qtbot.waitSignal(
            win.session.message_handled,
            timeout=GENERATION_TIMEOUT_MS,
            check_params_cb=lambda m: isinstance(m, ModelLoaded) and m.ref == BUNDLED_MODEL,
        ):
            panel.model.setCurrentIndex(index)
            panel.model.activated.emit(index)  # as a pick by the user
        assert (panel.width_box.value(), panel.height_box.value()) == (64, 64)
    finally:
        win.close()


def test_a_recipe_set_before_the_first_model_loads_keeps_its_size(qtbot, tiny_model_dir, tmp_path):
    restored = Recipe(prompt="a fox", width=64, height=64, model=str(tiny_model_dir))
    win = started_window(
        qtbot, tiny_model_dir, tmp_path / "settings.ini", lambda w: w.panel.set_recipe(restored)
    )
    try:
        assert (win.panel.width_box.value(), win.panel.height_box.value()) == (64, 64)
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
