"""The layers panel: shows the LayerStack and sends every edit as an undo command.

The panel keeps no layer state of its own. It redraws from the stack's
signals and turns user intent (eye toggle, rename, drag reorder, opacity,
blend mode, duplicate, delete) into commands on the shared QUndoStack.
The list shows the top layer first, as painting programs do.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.document import layer_commands as commands
from studio.document.compositing import BlendMode
from studio.document.layers import Layer, LayerStack

THUMB = 40
_ID_ROLE = Qt.ItemDataRole.UserRole


def _thumbnail(layer: Layer) -> QIcon:
    pixels = layer.pixels
    step = max(1, max(pixels.shape[:2]) // THUMB)
    small = np.ascontiguousarray(pixels[::step, ::step])
    h, w = small.shape[:2]
    image = QImage(small.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
    return QIcon(QPixmap.fromImage(image))


class LayersPanel(QWidget):
    """A dockable list of layers with eye, opacity, blend mode, rename, reorder, duplicate and delete."""

    current_layer_changed = Signal(str)  # layer id, "" when none
    source_version_requested = Signal(str)  # version id of the selected layer's source

    def __init__(
        self, stack: LayerStack, undo_stack: QUndoStack, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("layersPanel")
        self._stack = stack
        self._undo = undo_stack
        self._syncing = False
        self._opacity_gesture: int | None = None
        self._thumbs: dict[str, tuple[int, QIcon]] = {}

        self.list = QListWidget()
        self.list.setObjectName("layerList")
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.list.setToolTip("Double-click to rename, drag to reorder, tick to show or hide.")
        # Features add their actions on the current layer to the list: its context menu.
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setObjectName("layerOpacity")
        self.opacity.setRange(0, 100)
        self.opacity_label = QLabel("100%")
        self.opacity_label.setMinimumWidth(36)
        self.blend = QComboBox()
        self.blend.setObjectName("layerBlend")
        for mode in BlendMode:
            self.blend.addItem(mode.label, mode.value)

        self.raise_button = self._tool("Raise", "Move the layer up", self._raise)
        self.lower_button = self._tool("Lower", "Move the layer down", self._lower)
        self.duplicate_button = self._tool("Duplicate", "Duplicate the layer", self._duplicate)
        self.delete_button = self._tool("Delete", "Delete the layer", self._delete)
        self.source_button = self._tool(
            "Version", "Show the version this layer came from", self._show_source
        )

        properties = QHBoxLayout()
        properties.addWidget(QLabel("Opacity"))
        properties.addWidget(self.opacity, 1)
        properties.addWidget(self.opacity_label)
        blend_row = QHBoxLayout()
        blend_row.addWidget(QLabel("Blend"))
        blend_row.addWidget(self.blend, 1)
        buttons = QHBoxLayout()
        for button in (
            self.raise_button,
            self.lower_button,
            self.duplicate_button,
            self.delete_button,
            self.source_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(properties)
        layout.addLayout(blend_row)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.model().rowsMoved.connect(self._on_rows_moved)
        self.opacity.sliderPressed.connect(self._begin_opacity_drag)
        self.opacity.sliderReleased.connect(self._end_opacity_drag)
        self.opacity.valueChanged.connect(self._on_opacity)
        self.blend.currentIndexChanged.connect(self._on_blend)
        for signal in (
            stack.layer_inserted,
            stack.layer_removed,
            stack.layer_moved,
            stack.layer_changed,
        ):
            signal.connect(self._rebuild)
        self._rebuild()

    # ---- reading the stack ---------------------------------------------------------

    def current_layer_id(self) -> str:
        item = self.list.currentItem()
        return item.data(_ID_ROLE) if item is not None else ""

    def select_layer(self, layer_id: str) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(_ID_ROLE) == layer_id:
                self.list.setCurrentRow(row)
                return

    def _row_for_index(self, index: int) -> int:
        return len(self._stack) - 1 - index

    def _rebuild(self, *_args: object) -> None:
        """Make the list and the property widgets show the stack (signals from widgets are ignored meanwhile)."""
        current = self.current_layer_id()
        self._syncing = True
        try:
            layers = list(reversed(self._stack.layers))
            live = {layer.id for layer in layers}
            self._thumbs = {k: v for k, v in self._thumbs.items() if k in live}
            while self.list.count() > len(layers):
                self.list.takeItem(self.list.count() - 1)
            while self.list.count() < len(layers):
                item = QListWidgetItem()
                item.setFlags(
                    Qt.ItemFlag.ItemIsEnabled
                    | Qt.ItemFlag.ItemIsSelectable
                    | Qt.ItemFlag.ItemIsEditable
                    | Qt.ItemFlag.ItemIsUserCheckable
                    | Qt.ItemFlag.ItemIsDragEnabled
                )
                self.list.addItem(item)
            for row, layer in enumerate(layers):
                item = self.list.item(row)
                item.setData(_ID_ROLE, layer.id)
                item.setText(layer.name)
                item.setCheckState(
                    Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked
                )
                item.setIcon(self._icon(layer))
                tip = f"{layer.blend.label}, {round(layer.opacity * 100)}%, at {layer.offset[0]}, {layer.offset[1]}"
                if layer.source_version:
                    tip += f"\nFrom version {layer.source_version}"
                item.setToolTip(tip)
            if current in live:
                self.select_layer(current)
            elif layers:
                self.list.setCurrentRow(0)
            self._show_properties()
        finally:
            self._syncing = False

    def _icon(self, layer: Layer) -> QIcon:
        cached = self._thumbs.get(layer.id)
        if cached is None or cached[0] != id(layer.pixels):
            cached = (id(layer.pixels), _thumbnail(layer))
            self._thumbs[layer.id] = cached
        return cached[1]

    def _show_properties(self) -> None:
        layer_id = self.current_layer_id()
        layer = self._stack.layer(layer_id) if layer_id else None
        for widget in (
            self.opacity,
            self.blend,
            self.raise_button,
            self.lower_button,
            self.duplicate_button,
            self.delete_button,
        ):
            widget.setEnabled(layer is not None)
        self.source_button.setEnabled(bool(layer and layer.source_version))
        if layer is None:
            return
        index = self._stack.index_of(layer_id)
        self.raise_button.setEnabled(index < len(self._stack) - 1)
        self.lower_button.setEnabled(index > 0)
        if not self.opacity.isSliderDown():
            self.opacity.setValue(round(layer.opacity * 100))
        self.opacity_label.setText(f"{round(layer.opacity * 100)}%")
        self.blend.setCurrentIndex(self.blend.findData(layer.blend.value))

    # ---- sending intent ----------------------------------------------------------------

    def _tool(self, text: str, tip: str, slot) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def _on_current_changed(self, *_args: object) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self._show_properties()
        finally:
            self._syncing = False
        self.current_layer_changed.emit(self.current_layer_id())

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        layer_id = item.data(_ID_ROLE)
        layer = self._stack.layer(layer_id)
        visible = item.checkState() == Qt.CheckState.Checked
        if visible != layer.visible:
            self._undo.push(commands.set_visible(self._stack, layer_id, visible))
        name = item.text().strip()
        if name and name != layer.name:
            self._undo.push(commands.rename_layer(self._stack, layer_id, name))
        elif item.text() != layer.name:
            self._rebuild()  # an empty name is refused: show the old one again

    def _on_rows_moved(
        self, _parent: QModelIndex, start: int, _end: int, _dest: QModelIndex, row: int
    ) -> None:
        if self._syncing:
            return
        new_row = row if row < start else row - 1
        layer_id = self.list.item(new_row).data(_ID_ROLE)
        target = len(self._stack) - 1 - new_row
        if target != self._stack.index_of(layer_id):
            self._undo.push(commands.ReorderLayerCommand(self._stack, layer_id, target))
        else:
            self._rebuild()
        self.select_layer(layer_id)

    def _begin_opacity_drag(self) -> None:
        self._opacity_gesture = commands.new_gesture()
        if self.current_layer_id():
            self._stack.prepare_edit(self.current_layer_id())

    def _end_opacity_drag(self) -> None:
        self._opacity_gesture = None

    def _on_opacity(self, value: int) -> None:
        if self._syncing or not self.current_layer_id():
            return
        layer_id = self.current_layer_id()
        self.opacity_label.setText(f"{value}%")
        if round(self._stack.layer(layer_id).opacity * 100) != value:
            self._undo.push(
                commands.set_opacity(self._stack, layer_id, value / 100, self._opacity_gesture)
            )

    def _on_blend(self, _index: int) -> None:
        if self._syncing or not self.current_layer_id():
            return
        mode = BlendMode(self.blend.currentData())
        layer_id = self.current_layer_id()
        if self._stack.layer(layer_id).blend is not mode:
            self._undo.push(commands.set_blend(self._stack, layer_id, mode))

    def _raise(self) -> None:
        self._reorder(+1)

    def _lower(self) -> None:
        self._reorder(-1)

    def _reorder(self, delta: int) -> None:
        layer_id = self.current_layer_id()
        if layer_id:
            index = self._stack.index_of(layer_id)
            if 0 <= index + delta < len(self._stack):
                self._undo.push(commands.ReorderLayerCommand(self._stack, layer_id, index + delta))
                self.select_layer(layer_id)

    def _duplicate(self) -> None:
        layer_id = self.current_layer_id()
        if layer_id:
            command = commands.DuplicateLayerCommand(self._stack, layer_id)
            self._undo.push(command)
            self.select_layer(command.layer.id)

    def _delete(self) -> None:
        layer_id = self.current_layer_id()
        if layer_id:
            self._undo.push(commands.RemoveLayerCommand(self._stack, layer_id))

    def _show_source(self) -> None:
        layer_id = self.current_layer_id()
        if layer_id and self._stack.layer(layer_id).source_version:
            self.source_version_requested.emit(self._stack.layer(layer_id).source_version)
