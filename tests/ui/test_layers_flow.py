"""The layered canvas in the window: Add to canvas, the Canvas view, moving layers, import and drop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from studio.document.export import export_image
from studio.engine.recipe import Recipe
from studio.ui.project_menu import file_menu
from tests.ui.conftest import drag_enter_event, generate_and_wait


@pytest.fixture
def workspace(window):
    return window.workspace


@pytest.fixture
def offers(window, monkeypatch):
    """Answer "load the recipe?" with yes, and keep what was asked and every error shown."""
    asked: dict[str, list] = {"recipes": [], "errors": []}

    def ask(name, recipe, warnings):
        asked["recipes"].append((name, recipe, tuple(warnings)))
        return True

    monkeypatch.setattr(window.importer, "ask_load_recipe", ask)
    monkeypatch.setattr(window.importer, "show_error", asked["errors"].append)
    return asked


def test_add_to_canvas_places_the_result_as_a_linked_layer_and_is_undoable(
    qtbot, window, workspace
):
    version = generate_and_wait(qtbot, window)
    commands_before = window.session.undo_stack.count()
    window.workspace.add_action.trigger()
    (layer,) = workspace.layers.layers
    assert layer.source_version == version.id
    assert layer.name == version.name
    assert np.array_equal(layer.pixels[..., :3], window.session.tree.result(version.id))
    assert workspace.is_canvas_shown() and workspace.canvas_action.isChecked()
    assert window.session.undo_stack.count() == commands_before + 1
    assert workspace.panel.current_layer_id() == layer.id

    window.actions_.undo.trigger()
    assert len(workspace.layers) == 0
    window.actions_.redo.trigger()
    assert workspace.layers.layers[0].id == layer.id

    workspace.panel.source_button.click()  # the layer links back to its version
    assert window.session.current_version() is version and not workspace.is_canvas_shown()
    assert not workspace.canvas_action.isChecked()


def test_add_to_canvas_of_a_step_enlarges_the_preview_to_the_recipe_size(qtbot, window, workspace):
    version = generate_and_wait(qtbot, window)
    window.timeline.set_position(2)
    layer = workspace.add_version_to_canvas()
    assert layer.name == f"{version.name} · step 3 of 6"
    assert layer.pixels.shape == (32, 32, 4)
    assert layer.source_version == version.id


def test_versions_panel_asks_to_add_another_version(qtbot, window, workspace):
    first = generate_and_wait(qtbot, window)
    window.panel.seed.setText("5")
    generate_and_wait(qtbot, window)
    window.versions.add_to_canvas_requested.emit(first.id)
    (layer,) = workspace.layers.layers
    assert layer.source_version == first.id
    assert np.array_equal(layer.pixels[..., :3], window.session.tree.result(first.id))


def test_the_canvas_shows_the_composite_and_a_mouse_drag_is_one_move(qtbot, window, workspace):
    generate_and_wait(qtbot, window)
    workspace.add_version_to_canvas()
    window.panel.seed.setText("9")
    top_version = generate_and_wait(qtbot, window)
    top = workspace.add_version_to_canvas()
    assert len(workspace.layers) == 2 and workspace.is_canvas_shown()

    shown = workspace.view.composite_image()
    assert shown is not None and (shown.width(), shown.height()) == (32, 32)
    r, g, b = window.session.tree.result(top_version.id)[5, 7]
    pixel = shown.pixelColor(7, 5)
    assert (pixel.red(), pixel.green(), pixel.blue()) == (r, g, b)

    view = workspace.view
    view.resize(320, 320)
    view.fit()
    start = view.mapFromScene(QPointF(16, 16))
    end = view.mapFromScene(QPointF(24, 20))
    middle = (start + end) / 2
    before = window.session.undo_stack.count()
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), pos=middle)
    qtbot.mouseMove(view.viewport(), pos=end)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    moved = workspace.layers.layer(top.id)
    assert moved.offset == (8, 4)
    assert window.session.undo_stack.count() == before + 1, "the whole drag is one undo step"
    assert window.session.undo_stack.undoText().startswith("Move layer")
    shown = view.composite_image()
    pixel = shown.pixelColor(7 + 8, 5 + 4)
    assert (pixel.red(), pixel.green(), pixel.blue()) == (r, g, b)
    window.actions_.undo.trigger()
    assert workspace.layers.layer(top.id).offset == (0, 0)


def test_ctrl_l_toggles_between_the_version_and_the_canvas(qtbot, window, workspace):
    window.activateWindow()
    qtbot.keyClick(window.canvas, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert workspace.is_canvas_shown()
    assert "empty" in workspace.caption.text()
    qtbot.keyClick(workspace.view, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentIndex() == 0


def _png_with_parameters(path: Path, parameters: str) -> Path:
    info = PngInfo()
    info.add_text("parameters", parameters)
    Image.fromarray(np.full((24, 40, 3), 120, np.uint8)).save(path, pnginfo=info)
    return path


def test_importing_a_png_with_a1111_parameters_offers_its_recipe(
    qtbot, window, workspace, offers, tmp_path
):
    path = _png_with_parameters(
        tmp_path / "from-a1111.png",
        "a castle on a hill, sunset\nNegative prompt: blurry\n"
        "Steps: 12, Sampler: Heun, CFG scale: 6.5, Seed: 424242, Size: 40x24, Model hash: abc123",
    )
    assert window.importer.import_action in file_menu(window).actions()
    with qtbot.waitSignal(window.importer.recipe_offered):  # parsed off the UI thread
        (layer,) = window.importer.import_files([path])
    assert layer.name == "from-a1111" and layer.pixels.shape == (24, 40, 4)
    assert workspace.layers.layers[0] is layer and workspace.is_canvas_shown()

    ((name, recipe, warnings),) = offers["recipes"]
    assert name == "from-a1111.png"
    assert recipe.prompt == "a castle on a hill, sunset" and recipe.seed == 424242
    assert any("Heun" in w for w in warnings), "an unknown sampler is named in plain text"
    loaded = window.panel.recipe()
    assert (loaded.prompt, loaded.negative_prompt, loaded.seed, loaded.steps) == (
        "a castle on a hill, sunset",
        "blurry",
        424242,
        12,
    )
    assert loaded.guidance == 6.5 and (loaded.width, loaded.height) == (40, 24)


def test_importing_our_own_export_restores_the_identical_recipe(qtbot, window, offers, tmp_path):
    recipe = Recipe(
        prompt="a lighthouse in fog", seed=31337, steps=7, guidance=4.5, width=32, height=32
    )
    path = export_image(np.zeros((32, 32, 3), np.uint8), tmp_path / "mine.png", recipe)
    with qtbot.waitSignal(window.importer.recipe_offered):
        window.importer.import_files([path])
    ((_name, offered, _warnings),) = offers["recipes"]
    assert offered == recipe
    assert window.panel.recipe().prompt == recipe.prompt


def test_an_image_that_cannot_be_imported_is_explained_in_one_sentence(
    window, workspace, offers, tmp_path
):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    assert window.importer.import_files([broken]) == []
    (message,) = offers["errors"]
    assert "broken.png" in message and "\n" not in message
    assert len(workspace.layers) == 0 and window.session.undo_stack.count() == 0


def test_dropping_image_files_on_the_window_imports_them(
    qtbot, window, workspace, offers, tmp_path
):
    paths = []
    for n, color in enumerate(((255, 0, 0), (0, 0, 255))):
        path = tmp_path / f"drop{n}.png"
        Image.fromarray(np.full((16, 16, 3), color, np.uint8)).save(path)
        paths.append(path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in [*paths, tmp_path / "notes.txt"]])
    actions = Qt.DropAction.CopyAction
    enter = drag_enter_event(
        50, 50, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(50, 50), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()
    qtbot.waitUntil(lambda: len(workspace.layers) == 2)
    assert [layer.name for layer in workspace.layers] == ["drop0", "drop1"]
    assert window.session.undo_stack.undoText() == "Import 2 images"
    window.actions_.undo.trigger()
    assert len(workspace.layers) == 0

    text_only = QMimeData()
    text_only.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt"))])
    ignored = drag_enter_event(
        5, 5, actions, text_only, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    ignored.ignore()
    QApplication.sendEvent(window, ignored)
    assert not ignored.isAccepted()


def test_layers_and_their_links_are_saved_with_the_project(qtbot, window, tmp_path):
    from studio.document.store import ProjectStore
    from studio.ui.project_menu import ProjectSession

    session = ProjectSession(
        window.session, window, window.settings, recovery_folder=tmp_path / "rec"
    )
    session.start(offer_restore=False)
    version = generate_and_wait(qtbot, window)
    layer = window.workspace.add_version_to_canvas()
    window.workspace.view.begin_move(QPointF(1, 1))
    window.workspace.view.move_to(QPointF(4, 6))
    window.workspace.view.end_move()
    assert session.save_as(tmp_path / "layers.studio")
    session.shutdown()
    with ProjectStore.open(tmp_path / "layers.studio") as store:
        (record,) = store.layers()
    assert record.id == layer.id and record.version_id == version.id
    assert (record.offset_x, record.offset_y) == (3, 5)


def test_a_press_outside_the_selected_layer_picks_the_layer_under_the_cursor(window, workspace):
    from studio.document.layers import Layer

    bottom = workspace.add_layer(Layer(np.full((20, 20, 4), 255, np.uint8), name="bottom"))
    small = Layer(np.full((4, 4, 4), 255, np.uint8), name="small", offset=(0, 0))
    workspace.add_layer(small)
    assert workspace.panel.current_layer_id() == small.id
    view = workspace.view
    assert view.begin_move(QPointF(10, 10))  # outside "small": the bottom layer is picked
    view.move_to(QPointF(12, 13))
    view.end_move()
    assert workspace.panel.current_layer_id() == bottom.id
    assert workspace.layers.layer(bottom.id).offset == (2, 3)
    assert workspace.layers.layer(small.id).offset == (0, 0)
    assert view.begin_move(QPointF(3, 3))  # inside the selected bottom layer, under "small"
    view.move_to(QPointF(4, 3))
    view.end_move()
    assert workspace.layers.layer(bottom.id).offset == (3, 3)


def test_the_view_menu_zoom_acts_on_the_canvas_view(window, workspace):
    from studio.document.layers import Layer

    workspace.add_layer(Layer(np.zeros((200, 200, 4), np.uint8)))
    workspace.show_canvas(True)
    before = workspace.view.zoom()
    window.actions_.zoom_in.trigger()
    assert workspace.view.zoom() == pytest.approx(before * 1.25)
    window.actions_.fit.trigger()
    assert workspace.view.zoom() == pytest.approx(before)
