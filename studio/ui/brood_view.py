"""The brood view: a grid of a brood's children, each cell streaming its version's previews.

It shows a :class:`~studio.brood.BroodState` and the version tree, and sends
the user's intent back: a click picks a cell, the dose slider, the size box and
"Mix prompts" set the next brood's dose, size and prompt, "Breed from picked" asks for the next
generation. Arrow keys move the cursor, Return picks, Space flips between the
last two picks shown large (or shows one large); the window routes those keys
here while the page is up (see :meth:`BroodView.handle_key`).
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio.brood import MAX_CHILDREN, BroodState
from studio.document.versions import VersionTree
from studio.ui.qimage import to_qimage

DOSE_TICKS = 100
CAPTION_HEIGHT = 18
PICK_COLOUR = QColor(255, 170, 0)
CURSOR_COLOUR = QColor(80, 160, 255)
EMPTY_RGB = (40, 40, 40)


class BroodCell(QWidget):
    """One child: its version's newest image fitted to the cell, its name, and marks for the
    cursor (blue) and a pick (orange, numbered in pick order)."""

    clicked = Signal(str)

    def __init__(self, tree: VersionTree, version_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tree = tree
        self.version_id = version_id
        self.cursor = False
        self.pick_number = 0
        self.setMinimumSize(48, 48 + CAPTION_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(160, 160 + CAPTION_HEIGHT)

    def set_marks(self, cursor: bool, pick_number: int) -> None:
        if (cursor, pick_number) != (self.cursor, self.pick_number):
            self.cursor, self.pick_number = cursor, pick_number
            self.update()

    def caption(self) -> str:
        if self.version_id not in self._tree:
            return "waiting…"
        version = self._tree.get(self.version_id)
        if not version.finished:
            return f"{version.name} · {len(version.step_indices)}/{version.recipe.steps}"
        return version.name + (" · partial" if version.partial else "")

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        area = self.rect().adjusted(4, 4, -4, -4 - CAPTION_HEIGHT)
        side = max(1, min(area.width(), area.height()))
        square = QRect(0, 0, side, side)  # the children are square; no letterbox bars
        square.moveCenter(area.center())
        painter.fillRect(square, QColor(*EMPTY_RGB))
        image = self._tree.best_image(self.version_id) if self.version_id in self._tree else None
        if image is not None:
            painter.drawImage(square, to_qimage(image))
        if self.pick_number or self.cursor:
            colour = PICK_COLOUR if self.pick_number else CURSOR_COLOUR
            painter.setPen(QPen(colour, 4 if self.pick_number else 2))
            painter.drawRect(square.adjusted(-2, -2, 1, 1))
        text = self.caption()
        if self.pick_number:
            text = f"#{self.pick_number} · {text}"
        painter.setPen(self.palette().color(self.foregroundRole()))
        caption_box = QRect(0, square.bottom() + 4, self.width(), CAPTION_HEIGHT)
        painter.drawText(caption_box, Qt.AlignmentFlag.AlignCenter, text)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.version_id)


class BroodView(QWidget):
    """The brood page (see the module docstring): a header that is always visible (the
    generation, the dose, the brood size, Breed from picked, Close) over the grid, or one
    child shown large."""

    breed_requested = Signal()
    closed = Signal()

    def __init__(self, tree: VersionTree, state: BroodState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tree, self._state = tree, state
        self.cells: dict[str, BroodCell] = {}

        self.generation_label = QLabel()
        self.generation_label.setStyleSheet("font-weight: bold; padding: 2px 6px;")
        self.dose = QSlider(Qt.Orientation.Horizontal)
        self.dose.setRange(0, DOSE_TICKS)
        self.dose.setToolTip(
            "Mutation dose of the next brood: how far children stray from the cross"
        )
        self.dose.setMinimumWidth(120)
        self.dose_label = QLabel()
        self.size = QSpinBox()
        self.size.setRange(1, MAX_CHILDREN)
        self.size.setSuffix(" children")
        self.mix_prompts = QCheckBox("Mix prompts")
        self.mix_prompts.setToolTip(
            "Parents with different prompts give children conditioned on the mix of their "
            "prompts; off, the children keep the first parent's prompt"
        )
        self.breed_button = QPushButton("Breed from picked")
        self.breed_button.setToolTip("Cross the picked children into the next generation")
        self.close_button = QPushButton("Close brood")
        self.dose_label.setMinimumWidth(self.dose_label.fontMetrics().horizontalAdvance("0.00 "))
        # Two rows, so that a long title (a pruned search's) never squeezes the controls.
        header = QHBoxLayout()
        header.setContentsMargins(4, 2, 4, 0)
        header.addWidget(self.generation_label, 1)
        header.addWidget(self.close_button)
        controls = QHBoxLayout()
        controls.setContentsMargins(4, 0, 4, 2)
        controls.addWidget(QLabel("Dose"))
        controls.addWidget(self.dose)
        controls.addWidget(self.dose_label)
        controls.addWidget(self.size)
        controls.addWidget(self.mix_prompts)
        controls.addStretch(1)
        controls.addWidget(self.breed_button)
        self.hint = QLabel(
            "Click to pick · arrows move · Return picks · Space flips between the last two picks"
        )
        self.hint.setStyleSheet("color: gray; padding: 0 6px;")

        self.grid_page = QWidget()
        self.grid = QGridLayout(self.grid_page)
        self.grid.setSpacing(2)
        self.large = BroodCell(tree, "")
        self.large.clicked.connect(lambda _vid: state.set_large(None))
        self.body = QStackedWidget()
        self.body.addWidget(self.grid_page)
        self.body.addWidget(self.large)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addLayout(controls)
        layout.addWidget(self.hint)
        layout.addWidget(self.body, 1)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        state.brood_changed.connect(self._rebuild)
        state.cursor_changed.connect(self._mark)
        state.picks_changed.connect(self._mark)
        state.large_changed.connect(self._show_large)
        state.dose_changed.connect(self._show_dose)
        state.size_changed.connect(self.size.setValue)
        state.mix_prompts_changed.connect(self.mix_prompts.setChecked)
        self.mix_prompts.toggled.connect(state.set_mix_prompts)
        self.dose.valueChanged.connect(lambda tick: state.set_dose(tick / DOSE_TICKS))
        self.size.valueChanged.connect(state.set_size)
        self.breed_button.clicked.connect(self.breed_requested)
        self.close_button.clicked.connect(self.closed)
        for signal in (tree.step_appended, tree.version_finished, tree.result_changed):
            signal.connect(self._on_version_changed)
        tree.version_added.connect(self._on_version_changed)
        self._show_dose(state.dose)
        self.size.setValue(state.size)
        self.mix_prompts.setChecked(state.mix_prompts)
        self._rebuild()

    def handle_key(self, key: int) -> bool:
        """Arrows move the cursor, Return picks, Space flips; False for other keys."""
        state = self._state
        moves = {
            Qt.Key.Key_Left: (-1, 0),
            Qt.Key.Key_Right: (1, 0),
            Qt.Key.Key_Up: (0, -1),
            Qt.Key.Key_Down: (0, 1),
        }
        if not state.children:
            return False
        if key in moves:
            state.set_large(None)
            state.move_cursor(*moves[key])
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            state.toggle_pick(state.children[state.cursor])
        elif key == Qt.Key.Key_Space:
            state.flip()
        else:
            return False
        return True

    # ---- state -> view ----------------------------------------------------------------

    def _rebuild(self) -> None:
        state = self._state
        for cell in self.cells.values():
            self.grid.removeWidget(cell)
            cell.hide()  # deleteLater waits for the event loop; until then it would still paint
            cell.deleteLater()
        self.cells = {}
        columns = state.columns
        for index, version_id in enumerate(state.children):
            cell = BroodCell(self._tree, version_id)
            cell.clicked.connect(self._on_clicked)
            self.grid.addWidget(cell, index // columns, index % columns)
            self.cells[version_id] = cell
        for column in range(self.grid.columnCount()):
            self.grid.setColumnStretch(column, 1 if column < columns else 0)
        self._show_generation()
        self._mark()
        self._show_large(state.large)

    def _show_generation(self) -> None:
        state = self._state
        text = state.title or f"Generation {state.generation}"
        if state.children and not state.title:
            text += f" · {len(state.children)} children · {len(state.picks)} picked"
        self.generation_label.setText(text)
        self.breed_button.setEnabled(bool(state.picks))

    def _mark(self, *_args: object) -> None:
        state = self._state
        for index, version_id in enumerate(state.children):
            number = state.picks.index(version_id) + 1 if version_id in state.picks else 0
            self.cells[version_id].set_marks(index == state.cursor, number)
        self._show_generation()

    def _show_large(self, version_id: str | None) -> None:
        if version_id is None:
            self.body.setCurrentWidget(self.grid_page)
            return
        self.large.version_id = version_id
        picks = self._state.picks
        self.large.set_marks(False, picks.index(version_id) + 1 if version_id in picks else 0)
        self.large.update()
        self.body.setCurrentWidget(self.large)

    def _show_dose(self, dose: float) -> None:
        self.dose.blockSignals(True)
        self.dose.setValue(round(dose * DOSE_TICKS))
        self.dose.blockSignals(False)
        self.dose_label.setText(f"{dose:.2f}")

    def _on_version_changed(self, version_id: str, *_args: object) -> None:
        cell = self.cells.get(version_id)
        if cell is not None:
            cell.update()
        if version_id == self.large.version_id:
            self.large.update()

    # ---- view -> state ----------------------------------------------------------------

    def _on_clicked(self, version_id: str) -> None:
        state = self._state
        state.set_cursor(state.children.index(version_id))
        state.toggle_pick(version_id)
        self.setFocus()
