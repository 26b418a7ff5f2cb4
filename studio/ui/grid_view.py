"""The seed grid: its dialog (seeds × one or two axes) and its page of labelled cells.

The dialog reads the seeds and axes as the CLI's ``grid`` does
(:class:`studio.engine.grid.Axis`); the page shows a grid's cells, each a
:class:`~studio.ui.brood_view.BroodCell` streaming its version's previews, with
the first axis's values over the columns and the seeds (and the second axis) down
the rows. A click on a cell asks to open its version (``version_clicked``).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.document.versions import VersionTree
from studio.engine.grid import AXES, Axis, Cell
from studio.engine.recipe import RecipeError
from studio.ui.brood_view import BroodCell

NO_AXIS = ""
AXIS_EXAMPLES = {
    "cfg": "3,7,11",
    "steps": "10,20,30",
    "sampler": "Euler,Euler a,DPM++ 2M",
    "prompt": "red,blue,green",
    "dose": "0,0.2,0.4",
    "temperature": "0.9,1.0,1.1",
}


class GridDialog(QDialog):
    """Asks for a grid's seeds and up to two axes; :meth:`grid` parses them."""

    def __init__(self, first_seed: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Seed grid")
        self.seeds = QLineEdit(",".join(str(first_seed + i) for i in range(3)))
        self.seeds.setToolTip("Seeds, one row each; they stay fixed across every axis")
        form = QFormLayout(self)
        form.addRow("Seeds", self.seeds)
        self.axes: list[tuple[QComboBox, QLineEdit]] = []
        for label, default in (("Columns", "cfg"), ("Rows (optional)", NO_AXIS)):
            name = QComboBox()
            name.addItem("none", NO_AXIS)
            for key, description in AXES.items():
                name.addItem(key, key)
                name.setItemData(name.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
            values = QLineEdit()
            name.currentIndexChanged.connect(
                lambda _i, n=name, v=values: v.setPlaceholderText(
                    AXIS_EXAMPLES.get(n.currentData(), "")
                )
            )
            name.setCurrentIndex(name.findData(default))
            if default:
                values.setText(AXIS_EXAMPLES[default])
            row = QHBoxLayout()
            row.addWidget(name)
            row.addWidget(values, 1)
            form.addRow(label, row)
            self.axes.append((name, values))
        self.error = QLabel()
        self.error.setStyleSheet("color: #c0392b;")
        self.error.setWordWrap(True)
        form.addRow(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Make grid")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def grid(self) -> tuple[list[int], list[Axis]]:
        """The seeds and axes typed; raises RecipeError with a sentence to show."""
        try:
            seeds = [int(s) for s in self.seeds.text().split(",") if s.strip()]
        except ValueError:
            raise RecipeError("Seeds are whole numbers like 1,2,3.") from None
        axes = [
            Axis.parse(f"{name.currentData()}={values.text()}")
            for name, values in self.axes
            if name.currentData()
        ]
        return seeds, axes

    def _accept(self) -> None:
        try:
            self.grid()
        except RecipeError as exc:
            self.error.setText(str(exc))
            return
        self.accept()


class GridView(QWidget):
    """A grid's page (see the module docstring): a header with the grid's description,
    Export image… and Close, over the labelled cells."""

    version_clicked = Signal(str)
    export_requested = Signal()
    closed = Signal()

    def __init__(self, tree: VersionTree, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tree = tree
        self.cells: dict[str, BroodCell] = {}
        self.column_labels: list[QLabel] = []
        self.row_labels: list[QLabel] = []
        self.title = QLabel("No grid yet: Generate › Seed grid… (Ctrl+Shift+G)")
        self.title.setStyleSheet("font-weight: bold; padding: 2px 6px;")
        self.export_button = QPushButton("Export image…")
        self.export_button.setToolTip("The whole grid as one labelled PNG")
        self.close_button = QPushButton("Close grid")
        header = QHBoxLayout()
        header.setContentsMargins(4, 2, 4, 2)
        header.addWidget(self.title, 1)
        header.addWidget(self.export_button)
        header.addWidget(self.close_button)
        self.grid_page = QWidget()
        self.grid = QGridLayout(self.grid_page)
        self.grid.setSpacing(2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.grid_page, 1)
        self.export_button.clicked.connect(self.export_requested)
        self.close_button.clicked.connect(self.closed)
        for signal in (tree.step_appended, tree.version_finished, tree.result_changed):
            signal.connect(self._on_version_changed)
        tree.version_added.connect(self._on_version_changed)

    def show_grid(self, title: str, cells: Sequence[Cell], version_ids: Sequence[str]) -> None:
        for widget in [*self.cells.values(), *self.column_labels, *self.row_labels]:
            self.grid.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        self.cells, self.column_labels, self.row_labels = {}, [], []
        self.title.setText(title)
        for cell, version_id in zip(cells, version_ids, strict=True):
            if cell.row == 0:
                label = QLabel(cell.column_label)
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                self.grid.addWidget(label, 0, cell.column + 1)
                self.column_labels.append(label)
            if cell.column == 0:
                label = QLabel(cell.row_label)
                label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.grid.addWidget(label, cell.row + 1, 0)
                self.row_labels.append(label)
            widget = BroodCell(self._tree, version_id)
            widget.setToolTip(f"{cell.row_label} · {cell.column_label}".strip(" ·"))
            widget.clicked.connect(self._on_clicked)
            self.grid.addWidget(widget, cell.row + 1, cell.column + 1)
            self.cells[version_id] = widget
        columns = 1 + max((c.column for c in cells), default=0)
        for column in range(self.grid.columnCount()):
            self.grid.setColumnStretch(column, 1 if 0 < column <= columns else 0)

    def _on_clicked(self, version_id: str) -> None:
        if version_id in self._tree:
            self.version_clicked.emit(version_id)

    def _on_version_changed(self, version_id: str, *_args: object) -> None:
        cell = self.cells.get(version_id)
        if cell is not None:
            cell.update()
