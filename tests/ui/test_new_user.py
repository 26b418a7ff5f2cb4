"""What a new user met in the window (issue 13): compare and branch points follow the
timeline, keys scrub wherever no text field has focus, a version's settings load, a
stopped version says so and resumes exactly, deleting branches asks first."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from studio.document.versions import Version
from tests.ui.conftest import generate_and_wait, own_steps, result_of, set_small_recipe


def test_compare_panes_follow_the_timeline(qtbot, window):
    first = generate_and_wait(qtbot, window)
    set_small_recipe(window, steps=3)
    window.panel.seed.setText("7")
    second = generate_and_wait(qtbot, window)  # three steps against six
    window.session.show_version(first.id)
    window.session.compare(first.id, second.id)
    window.timeline.set_position(2)
    assert window.compare.left.current_array() is own_steps(window, first)[2].preview_x0
    # 2 of 0..5 is 0.4 of the run: step 1 of 0..2 for the three-step version
    assert window.compare.right.current_array() is own_steps(window, second)[1].preview_x0
    assert window.compare.shown_names() == ["v1 · step 3 / 6", "v2 · step 2 / 3"]
    window.timeline.set_position(5)
    assert window.compare.left.current_array() is result_of(window, first)
    assert window.compare.right.current_array() is result_of(window, second)


def test_copy_and_export_take_the_version_a_b_shows(qtbot, window):
    from PySide6.QtGui import QGuiApplication

    from studio.ui.canvas_workspace import at_recipe_size
    from studio.ui.clipboard import _rgba
    from studio.ui.export_actions import ImageSource

    first = generate_and_wait(qtbot, window)
    window.panel.seed.setText("7")
    second = generate_and_wait(qtbot, window)
    window.session.show_version(first.id)
    window.session.compare(first.id, second.id)
    exports = window.exports
    assert exports.proposed_name("image", ".png") == "untitled-v1.png"  # side by side: A
    window.compare.toggle.setChecked(True)
    window.compare.flip()  # B alone on view
    assert window.compare.shown_names()[0].startswith("v2")
    pixels, recipe = exports.image_for(ImageSource.VERSION)
    assert np.array_equal(pixels, result_of(window, second)) and recipe == second.recipe
    assert exports.proposed_name("image", ".png") == "untitled-v2.png"
    window.timeline.set_position(2)
    assert exports.proposed_name("image", ".png") == "untitled-v2-step3.png"
    window.activateWindow()
    window.canvas.setFocus()
    window.clipboard.copy_image()
    copied = _rgba(QGuiApplication.clipboard().image())[..., :3]
    shown = own_steps(window, second)[2].preview_x0
    assert shown is window.compare.left.current_array()
    size = (second.recipe.width, second.recipe.height)
    assert np.array_equal(copied, at_recipe_size(shown, size)[..., :3]), "B's step on view"
    window.compare.flip()  # back to A
    assert exports.image_for(ImageSource.VERSION)[1] == first.recipe


def test_keys_scrub_wherever_no_text_field_has_focus(qtbot, window):
    version = generate_and_wait(qtbot, window)
    window.activateWindow()
    window.timeline.filmstrip.itemClicked.emit(window.timeline.filmstrip.item(3))
    assert window.canvas.hasFocus() or window.focusWidget() is window.canvas
    qtbot.keyClick(window.canvas, Qt.Key.Key_End)
    assert window.timeline.position() == 5
    qtbot.keyClick(window.canvas, Qt.Key.Key_Left)
    qtbot.keyClick(window.history, Qt.Key.Key_Left)  # another dock, not a text field
    assert window.timeline.position() == 3
    window.panel.prompt.setFocus()
    qtbot.keyClick(window.panel.prompt, Qt.Key.Key_Left)
    qtbot.keyClick(window.panel.prompt, Qt.Key.Key_Home)
    assert window.timeline.position() == 3, "keys in the prompt edit the text"
    second = generate_and_wait(qtbot, window)
    window.session.compare(version.id, second.id)
    window.canvas.setFocus()
    window.compare.toggle.setChecked(True)
    qtbot.keyClick(window.compare, Qt.Key.Key_Space)
    assert window.compare.shown_names()[0].startswith("v2")


def test_the_branch_point_follows_the_timeline_and_keeps_the_typed_prompt(qtbot, window):
    parent = generate_and_wait(qtbot, window)
    window.branch_from_position(5)
    window.panel.prompt.setPlainText("a blue boat")
    window.timeline.set_position(2)
    target = window.panel.branch_target()
    assert (target.version_id, target.step_index) == (parent.id, 2)
    assert "step 3 / 6" in window.panel.branch_label.text()
    assert window.panel.prompt.toPlainText() == "a blue boat"
    child = generate_and_wait(qtbot, window)
    assert (child.parent_id, child.branch_step) == (parent.id, 2)


def test_double_click_or_use_these_settings_loads_a_versions_recipe(qtbot, window):
    first = generate_and_wait(qtbot, window)
    window.panel.prompt.setPlainText("something else")
    window.panel.seed.setText("99")
    item = window.versions.item(first.id)
    window.versions.view.itemDoubleClicked.emit(item, 0)
    loaded = window.panel.recipe()
    assert (loaded.prompt, loaded.seed) == (first.recipe.prompt, first.recipe.seed)
    window.panel.prompt.setPlainText("something else")
    window.actions_.use_settings.trigger()
    assert window.panel.recipe().prompt == first.recipe.prompt


def test_a_restored_unfinished_version_says_where_it_stopped_and_resumes_exactly(qtbot, window):
    whole = generate_and_wait(qtbot, window)
    tree = window.session.tree
    stopped = Version(whole.recipe, "v9", step_indices=[0, 1, 2], finished=False)
    for index in range(3):  # as a crash leaves it in the file: three steps, not finished
        tree.steps.put_step(stopped.id, tree.step(whole.id, index))
    tree.add(stopped)
    assert stopped.finished and stopped.partial
    window.session.show_version(stopped.id)
    assert "partial (stopped at step 3 of 6)" in window.version_view.caption.text()
    assert "stopped at step 3 of 6" in window.versions.item(stopped.id).text(1)
    with qtbot.waitSignal(tree.version_finished, timeout=60_000) as done:
        assert window.version_actions.resume(stopped.id) is not None
    resumed = tree.get(done.args[0])
    assert (resumed.parent_id, resumed.branch_step) == (stopped.id, 2)
    assert np.array_equal(result_of(window, resumed), result_of(window, whole))


def test_copy_the_picture_and_paste_an_image_as_a_layer(qtbot, window):
    from PySide6.QtGui import QGuiApplication, QImage

    from studio.ui.clipboard import _rgba

    version = generate_and_wait(qtbot, window)
    clipboard = QGuiApplication.clipboard()
    clipboard.clear()
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    copied = _rgba(clipboard.image())
    assert np.array_equal(copied[..., :3], result_of(window, version))

    window.panel.prompt.setFocus()
    window.panel.prompt.selectAll()
    qtbot.keyClick(window.panel.prompt, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert clipboard.text() == window.panel.prompt.toPlainText(), "the prompt copies its text"

    pixels = np.zeros((5, 7, 4), np.uint8)
    pixels[..., 0], pixels[..., 3] = 200, 255
    clipboard.setImage(QImage(pixels.data, 7, 5, 28, QImage.Format.Format_RGBA8888).copy())
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    (layer,) = window.workspace.layers.layers
    assert np.array_equal(layer.pixels, pixels) and layer.name == "Pasted image"
    window.session.undo_stack.undo()
    assert len(window.workspace.layers) == 0


def test_add_to_canvas_keeps_the_users_tab_and_flashes_layers(qtbot, window):
    from PySide6.QtWidgets import QTabBar

    generate_and_wait(qtbot, window)
    window.versions_dock.raise_()
    bars = [b for b in window.findChildren(QTabBar) if "Layers" in _tabs(b)]
    (bar,) = bars
    before = bar.tabTextColor(_tabs(bar).index("Layers"))
    window.workspace.add_version_to_canvas()
    assert window.session.view.canvas_shown
    assert bar.tabText(bar.currentIndex()) == "Versions", "the user's tab stays up"
    assert bar.tabTextColor(_tabs(bar).index("Layers")) != before, "the Layers tab flashes"


def _tabs(bar) -> list[str]:
    return [bar.tabText(i) for i in range(bar.count())]


def test_the_window_works_at_1024_by_600_with_generate_in_view(qtbot, window):
    assert window.minimumSizeHint().width() <= 1024 and window.minimumSizeHint().height() <= 600
    window.resize(1024, 600)
    qtbot.waitUntil(lambda: window.width() <= 1024 and window.height() <= 600)
    for button in (window.panel.generate_button, window.panel.cancel_button):
        assert button.isVisible()
        corner = button.mapTo(window, button.rect().bottomRight())
        assert window.rect().contains(corner), f"{button.text()} is out of view"
        assert not button.visibleRegion().isEmpty(), f"{button.text()} is scrolled away"


def test_crisp_pixels_shows_nearest_neighbour_at_any_zoom(qtbot, window):
    from PySide6.QtGui import QPainter

    generate_and_wait(qtbot, window)
    window.timeline.set_position(2)  # a stored preview, stretched to the recipe's size
    item = window.canvas._item
    assert item.transformationMode() == Qt.TransformationMode.SmoothTransformation
    window.actions_.crisp.trigger()
    assert item.transformationMode() == Qt.TransformationMode.FastTransformation
    assert not window.canvas.renderHints() & QPainter.RenderHint.SmoothPixmapTransform
    assert window.compare.left.is_crisp() and window.compare.right.is_crisp()


def test_export_starts_in_the_last_folder_with_a_name_from_the_work(
    qtbot, window, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QFileDialog

    generate_and_wait(qtbot, window)
    exports = window.exports
    assert exports.proposed_name("image", ".png") == "untitled-v1.png"
    window.timeline.set_position(2)
    assert exports.proposed_name("image", ".png") == "untitled-v1-step3.png"
    assert exports.proposed_name("layers", ".ora") == "untitled-layers.ora"
    asked: list[str] = []

    def answer(_parent, _title, start, _filters):
        asked.append(start)
        return str(tmp_path / "out" / "mine.png"), ""

    (tmp_path / "out").mkdir()
    (tmp_path / "home" / "Pictures").mkdir(parents=True)
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user-dirs.dirs
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(answer))
    exports._save_path("Export image", "PNG (*.png)", "untitled-v1.png")
    exports._save_path("Export image", "PNG (*.png)", "untitled-v2.png")
    assert asked[0] == str(tmp_path / "home" / "Pictures" / "untitled-v1.png"), "not the cwd"
    assert asked[1] == str(tmp_path / "out" / "untitled-v2.png"), "the last folder is kept"


def test_an_image_exports_enlarged_with_crisp_or_smooth_pixels(qtbot, window, tmp_path):
    from PIL import Image

    from studio.ui.export_actions import ImageSource

    version = generate_and_wait(qtbot, window)
    result = result_of(window, version)
    path = window.exports.export_image(tmp_path / "x4.png", ImageSource.VERSION, scale=4)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (128, 128, 3)
    assert np.array_equal(pixels, np.repeat(np.repeat(result, 4, axis=0), 4, axis=1))
    smooth = window.exports.export_image(
        tmp_path / "s2.png", ImageSource.VERSION, scale=2, smooth=True
    )
    with Image.open(smooth) as image:
        assert image.size == (64, 64)
        blocky = np.repeat(np.repeat(result, 2, axis=0), 2, axis=1)
        assert not np.array_equal(np.asarray(image.convert("RGB")), blocky), "smooth, not blocks"
