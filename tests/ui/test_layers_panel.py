"""The layers panel shows the LayerStack and turns each user action into one undo command."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QUndoStack

from studio.document import compositing
from studio.document.compositing import BlendMode
from studio.document.layer_commands import AddLayerCommand
from studio.document.layers import Layer, LayerStack
from studio.ui.layers_panel import LayersPanel
from tests.compositing_work import CompositingWork


def _solid(rgba, w=16, h=12) -> np.ndarray:
    return np.broadcast_to(np.array(rgba, np.uint8), (h, w, 4)).copy()


@pytest.fixture
def panel(qtbot):
    stack = LayerStack(16, 12)
    undo = QUndoStack()
    for name, colour in (
        ("bottom", (255, 0, 0, 255)),
        ("middle", (0, 255, 0, 255)),
        ("top", (0, 0, 255, 255)),
    ):
        undo.push(
            AddLayerCommand(
                stack,
                Layer(_solid(colour), name=name, source_version="v1" if name == "top" else None),
            )
        )
    undo.clear()
    widget = LayersPanel(stack, undo)
    qtbot.addWidget(widget)
    widget.resize(280, 360)
    widget.show()
    return widget, stack, undo


def _names(widget: LayersPanel) -> list[str]:
    return [widget.list.item(i).text() for i in range(widget.list.count())]


def test_list_shows_the_stack_top_first(panel) -> None:
    widget, stack, _ = panel
    assert _names(widget) == ["top", "middle", "bottom"]
    assert widget.current_layer_id() == stack[2].id
    assert widget.opacity.value() == 100
    assert widget.blend.currentData() == "normal"
    assert widget.blend.count() == len(BlendMode)
    assert not widget.raise_button.isEnabled() and widget.lower_button.isEnabled()
    assert widget.source_button.isEnabled()  # "top" links back to version v1


def test_pressing_the_opacity_slider_prepares_the_preview_of_its_drag(qtbot, monkeypatch) -> None:
    """The press builds the preview's caches off the UI thread, so the first value of the drag
    blends only the selected layer and the layers above it."""
    monkeypatch.setattr(compositing, "PREVIEW_PIXELS", 16 * 16)
    work = CompositingWork(monkeypatch)
    rng = np.random.default_rng(2)
    stack = LayerStack(64, 64)
    for i, mode in enumerate(BlendMode):
        pixels = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
        stack.add(Layer(pixels, name=f"l{i}", blend=mode))
    widget = LayersPanel(stack, QUndoStack())
    qtbot.addWidget(widget)
    widget.select_layer(stack[3].id)
    widget.opacity.setSliderDown(True)  # emits sliderPressed, as a mouse press does
    assert work.on_ui() == (0, 0)
    for value in (80, 60):
        widget.opacity.setValue(value)
        assert stack[3].opacity == value / 100
        stack.composite_preview()
        assert work.on_ui() == (4, 1), f"at {value}%: layers 3 to 6 blended, 3 premultiplied"
        work.reset()
    widget.opacity.setSliderDown(False)


def test_eye_toggle_pushes_visibility_command(panel) -> None:
    widget, stack, undo = panel
    item = widget.list.item(1)  # middle
    item.setCheckState(Qt.CheckState.Unchecked)
    assert not stack[1].visible and undo.count() == 1
    undo.undo()
    assert stack[1].visible
    assert widget.list.item(1).checkState() == Qt.CheckState.Checked


def test_rename_through_the_editor(panel, qtbot) -> None:
    widget, stack, undo = panel
    item = widget.list.item(0)
    item.setText("sky")
    assert stack[2].name == "sky" and undo.count() == 1
    item.setText("   ")
    assert stack[2].name == "sky" and _names(widget)[0] == "sky" and undo.count() == 1
    undo.undo()
    assert _names(widget)[0] == "top"


def test_opacity_slider_drag_is_one_command(panel, qtbot) -> None:
    widget, stack, undo = panel
    widget.opacity.setSliderDown(True)
    widget._begin_opacity_drag()  # what sliderPressed does on a real mouse press
    for value in (90, 70, 45):
        widget.opacity.setValue(value)
    widget.opacity.setSliderDown(False)
    widget._end_opacity_drag()
    assert stack[2].opacity == pytest.approx(0.45)
    assert undo.count() == 1
    assert widget.opacity_label.text() == "45%"
    undo.undo()
    assert stack[2].opacity == 1.0 and widget.opacity.value() == 100


def test_opacity_slider_with_the_mouse(panel, qtbot) -> None:
    widget, stack, undo = panel
    slider = widget.opacity
    y = slider.height() // 2
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=slider.rect().center())
    for x in (slider.width() // 3, slider.width() // 4, 4):
        from PySide6.QtCore import QPoint

        qtbot.mouseMove(slider, QPoint(x, y))
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(4, y))
    assert stack[2].opacity < 1.0
    assert undo.count() == 1


def test_blend_combo_pushes_command(panel) -> None:
    widget, stack, undo = panel
    widget.blend.setCurrentIndex(widget.blend.findData("multiply"))
    assert stack[2].blend is BlendMode.MULTIPLY and undo.count() == 1
    widget.list.setCurrentRow(2)  # bottom
    assert widget.blend.currentData() == "normal"
    assert undo.count() == 1  # showing another layer pushes nothing


def test_drag_reorder_moves_the_layer(panel) -> None:
    widget, stack, undo = panel
    model = widget.list.model()
    # drag the bottom row ("bottom") to the top of the list
    assert model.moveRows(QModelIndex(), 2, 1, QModelIndex(), 0)
    assert [layer.name for layer in stack] == ["middle", "top", "bottom"]
    assert _names(widget) == ["bottom", "top", "middle"]
    assert undo.count() == 1
    undo.undo()
    assert [layer.name for layer in stack] == ["bottom", "middle", "top"]
    assert _names(widget) == ["top", "middle", "bottom"]


def test_buttons_raise_lower_duplicate_delete(panel, qtbot) -> None:
    widget, stack, undo = panel
    widget.list.setCurrentRow(2)  # bottom
    qtbot.mouseClick(widget.raise_button, Qt.MouseButton.LeftButton)
    assert [layer.name for layer in stack] == ["middle", "bottom", "top"]
    assert widget.list.currentItem().text() == "bottom"
    qtbot.mouseClick(widget.duplicate_button, Qt.MouseButton.LeftButton)
    assert [layer.name for layer in stack] == ["middle", "bottom", "bottom copy", "top"]
    assert widget.list.currentItem().text() == "bottom copy"
    qtbot.mouseClick(widget.delete_button, Qt.MouseButton.LeftButton)
    assert [layer.name for layer in stack] == ["middle", "bottom", "top"]
    qtbot.mouseClick(widget.lower_button, Qt.MouseButton.LeftButton)
    assert undo.count() == 4
    while undo.canUndo():
        undo.undo()
    assert _names(widget) == ["top", "middle", "bottom"]


def test_source_version_link(panel, qtbot) -> None:
    widget, _, _ = panel
    with qtbot.waitSignal(widget.source_version_requested) as blocker:
        qtbot.mouseClick(widget.source_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["v1"]


def test_empty_stack_disables_controls(qtbot) -> None:
    widget = LayersPanel(LayerStack(), QUndoStack())
    qtbot.addWidget(widget)
    assert widget.list.count() == 0
    assert not widget.opacity.isEnabled() and not widget.delete_button.isEnabled()
