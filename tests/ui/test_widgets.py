"""Widgets on their own: the prompt panel maps to Recipe fields, the canvas zooms, the timeline labels."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from studio.engine.recipe import Recipe, RecipeError
from studio.session import BranchTarget
from studio.ui.canvas import Canvas
from studio.ui.prompt_panel import PromptPanel
from studio.ui.timeline import Timeline


def test_prompt_panel_round_trips_every_recipe_field(qtbot):
    panel = PromptPanel()
    qtbot.addWidget(panel)
    recipe = Recipe(
        "a fox",
        "blurry",
        seed=2**63 + 5,
        steps=33,
        guidance=6.5,
        sampler="DPM++ 2M Karras",
        width=96,
        height=48,
        model="bundled",
        variation_seed=77,
        variation_strength=0.25,
    )
    panel.set_recipe(recipe)
    assert panel.recipe() == recipe


def test_prompt_panel_branch_mode_adds_renoise_and_locks_run_shape(qtbot):
    panel = PromptPanel()
    qtbot.addWidget(panel)
    base = Recipe("a fox", seed=3, steps=10, width=64, height=64)
    panel.enter_branch_mode(BranchTarget("abc", 4), base, "Branching from step 5 / 10 of v1.")
    assert panel.branch_target() == BranchTarget("abc", 4)
    assert not panel.steps.isEnabled() and not panel.sampler.isEnabled()
    assert panel.recipe() == base  # unchanged branch: the same recipe
    panel.renoise_seed.setText("9")
    panel.renoise_strength.setValue(0.3)
    assert panel.recipe() == base.with_changes(renoise_seed=9, renoise_strength=0.3)
    panel.leave_branch_mode()
    assert panel.branch_target() is None and panel.steps.isEnabled()
    assert panel.recipe().renoise_strength == 0.0


def test_random_seed_is_rolled_and_shown_fixed_seed_is_kept(qtbot):
    panel = PromptPanel()
    qtbot.addWidget(panel)
    panel.seed_random.setChecked(False)
    panel.seed.setText("42")
    panel.prepare_for_generation()
    assert panel.recipe().seed == 42
    panel.seed_random.setChecked(True)
    seen = set()
    for _ in range(5):
        panel.prepare_for_generation()
        seen.add(panel.recipe().seed)
    assert len(seen) > 1
    assert panel.seed_random.text() == "random"


def test_empty_or_huge_seed_is_refused_with_a_sentence(qtbot):
    panel = PromptPanel()
    qtbot.addWidget(panel)
    panel.seed.setText("")
    with pytest.raises(RecipeError):
        panel.recipe()
    panel.seed.setText("99999999999999999999")
    with pytest.raises(RecipeError, match="2\\^64-1"):
        panel.recipe()


def test_canvas_stretches_previews_to_the_image_size_and_zooms(qtbot):
    canvas = Canvas()
    qtbot.addWidget(canvas)
    canvas.resize(400, 400)
    canvas.show()
    preview = np.zeros((8, 8, 3), np.uint8)
    canvas.show_image(preview, (64, 64))
    assert canvas.current_array() is preview
    assert canvas.sceneRect().width() == 64
    fitted = canvas.zoom()
    assert fitted > 4  # 64 px fitted into ~400 px
    event = QWheelEvent(
        QPointF(200, 200),
        QPointF(canvas.mapToGlobal(QPoint(200, 200))),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    canvas.wheelEvent(event)
    assert canvas.zoom() == pytest.approx(fitted * 1.25)
    canvas.fit()
    assert canvas.zoom() == pytest.approx(fitted)


def test_timeline_labels_steps_of_the_whole_run(qtbot):
    timeline = Timeline()
    qtbot.addWidget(timeline)
    thumbs = [np.zeros((4, 4, 3), np.uint8)] * 3
    timeline.set_steps([0, 1, 2], 20, thumbs)
    assert timeline.label.text() == "step 3 / 20"
    with qtbot.waitSignal(timeline.position_settled) as settled:
        timeline.set_position(0)
    assert settled.args == [0]
    assert timeline.label.text() == "step 1 / 20"
    timeline.append_step(3, thumbs[0])
    assert timeline.position() == 0  # the user scrubbed back: new steps do not pull the slider
    timeline.set_position(3)
    timeline.append_step(4, thumbs[0])
    assert timeline.position() == 4  # at the end: follow the run


def test_filmstrip_placeholders_are_replaced_by_the_thumbnails_read_later(qtbot):
    from studio.ui.timeline import PLACEHOLDER_GREY, THUMB

    timeline = Timeline()
    qtbot.addWidget(timeline)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    timeline.set_steps([0, 1, 2], 3, [None, red, None])

    def centre(row: int) -> tuple[int, int, int]:
        pixel = timeline.filmstrip.item(row).icon().pixmap(THUMB, THUMB).toImage()
        colour = pixel.pixelColor(THUMB // 2, THUMB // 2)
        return colour.red(), colour.green(), colour.blue()

    assert centre(0) == centre(2) == (PLACEHOLDER_GREY,) * 3 and centre(1) == (255, 0, 0)
    blue = np.zeros((4, 4, 3), np.uint8)
    blue[..., 2] = 255
    timeline.replace_thumbnails({2: blue, 7: blue})  # a row past the end is ignored
    assert centre(2) == (0, 0, 255) and centre(0) == (PLACEHOLDER_GREY,) * 3


def test_default_window_size_fits_the_screen(qtbot):
    from PySide6.QtGui import QGuiApplication

    from studio.ui.main_window import _default_size

    available = QGuiApplication.primaryScreen().availableGeometry().size()
    size = _default_size()
    assert size.width() <= available.width() and size.height() <= available.height()
    assert size.width() > 0 and size.height() > 0
