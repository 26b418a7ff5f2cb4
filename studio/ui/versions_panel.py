"""The versions panel: the version tree with thumbnails, names and branch marks.

It shows the tree (creation order, branches under their parents) or, when asked
to (:meth:`VersionsPanel.show_ranked`), every version in one flat ranked list with
its scores; the "Order" box sends the user's choice back (``order_requested``)."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.brood import BroodOrigins
from studio.document.versions import Version, VersionTree
from studio.scores import PLUGIN_ORDER
from studio.ui.qimage import to_thumbnail

ICON = 36
ORDER_LABELS = {
    "created": "Creation order",
    "fidelity": "Fidelity",
    "novelty": "Novelty",
    "combined": "Combined (explore slider)",
}
STEP_REFRESH = 4
_ID_ROLE = Qt.ItemDataRole.UserRole


class VersionsPanel(QWidget):
    """Mirrors a VersionTree; every edit is sent back as a request signal.

    Renaming in place emits ``rename_requested`` and the item shows the new name
    only when the tree says so, so undo and redo keep the panel truthful.
    """

    version_activated = Signal(str)
    branch_requested = Signal(str)
    rename_requested = Signal(str, str)
    delete_requested = Signal(str)
    compare_requested = Signal(str, str)
    add_to_canvas_requested = Signal(str)
    use_settings_requested = Signal(str)
    resume_requested = Signal(str)
    breed_requested = Signal(list)
    order_requested = Signal(str)

    def __init__(
        self,
        tree: VersionTree,
        origins: BroodOrigins | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._tree = tree
        self._origins = origins
        self._items: dict[str, QTreeWidgetItem] = {}
        self._ranked: list[str] | None = None
        # Once per burst, after it: opening a project fills every row, and a resize per row
        # measures every row again (minutes for a thousand versions).
        self._resize_soon = QTimer(self, singleShot=True, interval=0)
        self._resize_soon.timeout.connect(lambda: self.view.resizeColumnToContents(0))

        self.view = QTreeWidget()
        self.view.setColumnCount(2)
        self.view.setHeaderLabels(["Version", "From"])
        self.view.setIconSize(QSize(ICON, ICON))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        # Double-click loads a version's settings (A1111's "send to txt2img"); F2 renames.
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.setColumnWidth(0, 96)
        self.view.header().setStretchLastSection(True)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip(
            "Compare the two selected versions (Ctrl+click to select two)"
        )
        self.compare_button.setEnabled(False)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setEnabled(False)

        self.order = QComboBox()
        for key, label in ORDER_LABELS.items():
            self.order.addItem(label, key)
        # the dock may be narrow: the box shrinks rather than widen it
        self.order.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.order.setMinimumContentsLength(8)
        self.order.setToolTip(
            "Creation order shows the tree; a score lists every version best first "
            "(unscored ones last), the combined score at the Scores dock's explore mix"
        )
        order_row = QHBoxLayout()
        order_row.addWidget(QLabel("Order"))
        order_row.addWidget(self.order, 1)

        buttons = QHBoxLayout()
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(order_row)
        layout.addWidget(self.view)
        layout.addLayout(buttons)

        tree.version_added.connect(self._on_added)
        tree.version_removed.connect(self._on_removed)
        tree.version_renamed.connect(self._on_renamed)
        tree.version_finished.connect(self._refresh)
        tree.result_changed.connect(self._refresh)
        tree.step_appended.connect(self._on_step)
        if origins is not None:
            origins.changed.connect(self._refresh)
        self.view.itemClicked.connect(self._on_clicked)
        self.view.itemDoubleClicked.connect(
            lambda item, _column: self.use_settings_requested.emit(item.data(0, _ID_ROLE))
        )
        self.view.itemChanged.connect(self._on_item_changed)
        self.view.itemSelectionChanged.connect(self._on_selection)
        self.view.customContextMenuRequested.connect(self._menu)
        self.compare_button.clicked.connect(self._compare_selected)
        self.delete_button.clicked.connect(self._delete_selected)
        self.order.currentIndexChanged.connect(
            lambda _i: self.order_requested.emit(self.order.currentData())
        )
        for version in tree.versions():
            self._on_added(version.id)

    # ---- public -------------------------------------------------------------------

    def select(self, version_id: str | None) -> None:
        self.view.blockSignals(True)
        self.view.clearSelection()
        item = self._items.get(version_id) if version_id else None
        if item is not None:
            item.setSelected(True)
            # NoUpdate: the selection must not depend on the keyboard modifiers held now
            self.view.setCurrentItem(item, 0, QItemSelectionModel.SelectionFlag.NoUpdate)
            self.view.scrollToItem(item)
        self.view.blockSignals(False)
        self._on_selection()

    def selected_ids(self) -> list[str]:
        return [item.data(0, _ID_ROLE) for item in self.view.selectedItems()]

    def item(self, version_id: str) -> QTreeWidgetItem | None:
        return self._items.get(version_id)

    def show_order_key(self, key: str) -> None:
        """Show ``key`` in the Order box without asking for it again."""
        self.order.blockSignals(True)
        self.order.setCurrentIndex(max(0, self.order.findData(key)))
        self.order.blockSignals(False)

    def show_plugin_orders(self, names: list[str]) -> None:
        """Offer "By <name>" in the Order box for each scorer plug-in in ``names`` (those
        some version has a value of), after the built-in orders."""
        keys = [f"{PLUGIN_ORDER}{name}" for name in names]
        shown = [self.order.itemData(i) for i in range(len(ORDER_LABELS), self.order.count())]
        if shown == keys:
            return
        current = self.order.currentData()
        self.order.blockSignals(True)
        while self.order.count() > len(ORDER_LABELS):
            self.order.removeItem(self.order.count() - 1)
        for name, key in zip(names, keys, strict=True):
            self.order.addItem(f"By {name}", key)
        self.order.setCurrentIndex(max(0, self.order.findData(current)))
        self.order.blockSignals(False)

    def show_ranked(self, version_ids: list[str] | None) -> None:
        """Every version as one flat list in the order of ``version_ids`` (with its scores),
        or, with None, the tree again. The selection is kept."""
        ranked = None if version_ids is None else [v for v in version_ids if v in self._items]
        if ranked == self._ranked:
            if ranked is not None:  # the tree shows no scores: only a ranked list has new ones
                for version_id, item in self._items.items():
                    self._fill(item, self._tree.get(version_id))
            return
        selected, current = self.selected_ids(), self.view.currentItem()
        self._ranked = ranked
        self.view.blockSignals(True)
        for item in self._items.values():
            parent = item.parent()
            if parent is not None:
                parent.removeChild(item)
        while self.view.topLevelItemCount():
            self.view.takeTopLevelItem(0)
        if ranked is not None:
            rest = [v.id for v in self._tree.versions() if v.id not in set(ranked)]
            for version_id in [*ranked, *rest]:
                self.view.addTopLevelItem(self._items[version_id])
        else:
            for version in self._tree.versions():
                self._place(self._items[version.id], version)
        for version_id, item in self._items.items():
            item.setSelected(version_id in selected)
            self._fill(item, self._tree.get(version_id))
        if current is not None:
            self.view.setCurrentItem(current, 0, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.view.blockSignals(False)
        self._on_selection()

    def shown_order(self) -> list[str]:
        """The version ids as the rows show them, top to bottom (depth first)."""
        order: list[str] = []
        view = self.view
        stack = [view.topLevelItem(i) for i in reversed(range(view.topLevelItemCount()))]
        while stack:  # iterative: a lineage may be thousands of branches deep
            item = stack.pop()
            order.append(item.data(0, _ID_ROLE))
            stack.extend(item.child(i) for i in reversed(range(item.childCount())))
        return order

    # ---- tree -> view ---------------------------------------------------------------

    def _on_added(self, version_id: str) -> None:
        version = self._tree.get(version_id)
        item = QTreeWidgetItem()
        item.setData(0, _ID_ROLE, version_id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self._items[version_id] = item
        if self._ranked is not None:  # at the end until the list is ranked again
            self.view.addTopLevelItem(item)
            self._fill(item, version)
            return
        self._place(item, version)
        self._fill(item, version)
        for child in self._tree.children(version_id):  # re-added by undo after its children
            if child.id in self._items:
                self._reparent(child.id, item)

    def _place(self, item: QTreeWidgetItem, version: Version) -> None:
        parent_item = self._items.get(version.parent_id) if version.parent_id else None
        if parent_item is not None:
            parent_item.addChild(item)
            parent_item.setExpanded(True)
        else:
            self.view.addTopLevelItem(item)

    def _reparent(self, version_id: str, new_parent: QTreeWidgetItem) -> None:
        item = self._items[version_id]
        old_parent = item.parent()
        if old_parent is new_parent:
            return
        if old_parent is None:
            self.view.takeTopLevelItem(self.view.indexOfTopLevelItem(item))
        else:
            old_parent.removeChild(item)
        new_parent.addChild(item)

    def _on_removed(self, version_id: str) -> None:
        item = self._items.pop(version_id, None)
        if item is None:
            return
        parent = item.parent()
        if parent is None:
            self.view.takeTopLevelItem(self.view.indexOfTopLevelItem(item))
        else:
            parent.removeChild(item)
        self._on_selection()

    def _on_renamed(self, version_id: str, _name: str) -> None:
        self._refresh(version_id)

    def _on_step(self, version_id: str, _index: int) -> None:
        version = self._tree.get(version_id)
        # The row shows progress; every few steps is enough and keeps fast runs cheap.
        count = len(version.step_indices)
        if count == 1 or count % STEP_REFRESH == 0:
            self._refresh(version_id)

    def _refresh(self, version_id: str) -> None:
        item = self._items.get(version_id)
        if item is not None and version_id in self._tree:
            self._fill(item, self._tree.get(version_id))

    def _fill(self, item: QTreeWidgetItem, version: Version) -> None:
        self.view.blockSignals(True)
        item.setText(0, version.name)
        origin = self._origin(version)
        if self._ranked is not None and version.scores is not None:
            scores = version.scores
            origin = f"fidelity {scores.fidelity:.3f} · novelty {scores.novelty:.3f}" + (
                f" · {origin}" if origin else ""
            )
        item.setText(1, origin)
        image = version.thumbnail
        item.setIcon(0, QIcon(to_thumbnail(image, ICON)) if image is not None else QIcon())
        tip = f"{version.name}\n{version.recipe.prompt}\nseed {version.recipe.seed}"
        if item.text(1):
            tip += "\n" + item.text(1)
        item.setToolTip(0, tip)
        item.setToolTip(1, tip)
        self.view.blockSignals(False)
        self._resize_soon.start()

    def _origin(self, version: Version) -> str:
        parts = []
        bred = self._origins.get(version.id) if self._origins is not None else None
        if bred is not None:
            names = (self._tree.get(p).name if p in self._tree else "?" for p in bred.parent_ids)
            parts.append(f"× {', '.join(names)} · gen {bred.generation}")
        if version.parent_id is not None and version.branch_step is not None:
            parent = self._tree.get(version.parent_id) if version.parent_id in self._tree else None
            name = parent.name if parent else "?"
            parts.append(f"from step {version.branch_step + 1} of {name}")
        if not version.finished:
            parts.append(f"generating {len(version.step_indices)}/{version.recipe.steps}…")
        elif version.partial and version.step_indices:
            last = version.step_indices[-1] + 1
            parts.append(f"partial · stopped at step {last} of {version.recipe.steps}")
        elif version.partial:
            parts.append("partial")
        return " · ".join(parts)

    # ---- view -> requests -------------------------------------------------------------

    def _on_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        if len(self.view.selectedItems()) <= 1:
            self.version_activated.emit(item.data(0, _ID_ROLE))

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        version_id = item.data(0, _ID_ROLE)
        if column != 0 or version_id not in self._tree:
            return
        name = item.text(0).strip()
        current = self._tree.get(version_id).name
        self._refresh(version_id)  # show the tree's name until the command says otherwise
        if name and name != current:
            self.rename_requested.emit(version_id, name)

    def _on_selection(self) -> None:
        count = len(self.view.selectedItems())
        self.compare_button.setEnabled(count == 2)
        self.delete_button.setEnabled(count >= 1)

    def _compare_selected(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 2:
            self.compare_requested.emit(ids[0], ids[1])

    def _delete_selected(self) -> None:
        for version_id in self.selected_ids():
            if version_id in self._tree:
                self.delete_requested.emit(version_id)

    def _menu(self, point: QPoint) -> None:
        item = self.view.itemAt(point)
        if item is None:
            return
        version_id = item.data(0, _ID_ROLE)
        menu = QMenu(self)
        show = menu.addAction("Show")
        use_settings = menu.addAction("Use these settings")
        branch = menu.addAction("Branch from this step")
        resume = None
        version = self._tree.get(version_id)
        if version.partial and version.step_indices:
            resume = menu.addAction("Resume")
        rename = menu.addAction("Rename")
        add_to_canvas = menu.addAction("Add to canvas")
        selected = self.selected_ids()
        breed_ids = selected if version_id in selected else [version_id]
        breed = menu.addAction(f"Breed from {'selected' if len(breed_ids) > 1 else 'this'}")
        breed.setShortcut(QKeySequence("Ctrl+Shift+B"))
        compare = None
        if len(self.selected_ids()) == 2:
            compare = menu.addAction("Compare selected")
        menu.addSeparator()
        delete = menu.addAction("Delete")
        chosen = menu.exec(self.view.viewport().mapToGlobal(point))
        if chosen is show:
            self.version_activated.emit(version_id)
        elif chosen is use_settings:
            self.use_settings_requested.emit(version_id)
        elif resume is not None and chosen is resume:
            self.resume_requested.emit(version_id)
        elif chosen is branch:
            self.branch_requested.emit(version_id)
        elif chosen is rename:
            self.view.editItem(item, 0)
        elif chosen is add_to_canvas:
            self.add_to_canvas_requested.emit(version_id)
        elif chosen is breed:
            self.breed_requested.emit(breed_ids)
        elif compare is not None and chosen is compare:
            self._compare_selected()
        elif chosen is delete:
            self.delete_requested.emit(version_id)
