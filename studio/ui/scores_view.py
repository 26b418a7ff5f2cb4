"""The scores view: a novelty × fidelity map of scored versions, the explore ↔ exploit
slider and the versions sorted by fidelity, novelty or the slider's mix.

It shows the session's scores (``Session.scores``) for the versions of a
:class:`~studio.scores.TasteState` and sends the user's intent back: "Score
these", a click on a point or a row (``version_clicked``), the slider and the
sort key (set on the state), "Order brood by score". It keeps nothing of its
own but the point under the mouse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from studio import taste
from studio.document.scores import VersionScores
from studio.document.versions import VersionTree
from studio.scores import (
    SCORE_COSTS,
    SORT_KEYS,
    TasteState,
    cost_groups,
    cost_of,
    cost_text,
    evaluations_per_image,
    ordered,
    plugin_text,
)
from studio.ui.qimage import to_qimage, to_thumbnail

EXPLORE_TICKS = 100
THUMB = 44
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 50, 16, 14, 34
FRONT_COLOUR = QColor(255, 170, 0)
CURRENT_COLOUR = QColor(80, 160, 255)
OTHER_COLOUR = QColor(130, 130, 130)
SORT_LABELS = {"combined": "Combined (slider)", "fidelity": "Fidelity", "novelty": "Novelty"}
COST_LABELS = {"fast": "Fast", "standard": "Standard", "careful": "Careful"}
_ID_ROLE = Qt.ItemDataRole.UserRole


def score_text(name: str, score: VersionScores) -> str:
    text = f"{name} · fidelity {score.fidelity:.3f} · novelty {score.novelty:.3f}"
    if score.context_novelty is not None:
        text += f" · novelty among those scored with it {score.context_novelty:+.2f}"
    text += f" · scored at {cost_text(cost_of(score))}"
    plugins = plugin_text(score)
    return f"{text} · {plugins}" if plugins else text


class ScatterPlot(QWidget):
    """Novelty (x) × fidelity (y), one thumbnail per scored version; the Pareto front
    (no other version is both more faithful and more novel) is joined and framed in
    orange, the version on view in blue. Hover names a point, a click emits its id."""

    version_clicked = Signal(str)

    def __init__(
        self,
        tree: VersionTree,
        scores: Mapping[str, VersionScores],
        state: TasteState,
        current: Callable[[], str | None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._tree, self._scores, self._state, self._current = tree, scores, state, current
        self.hovered: str | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(220, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(420, 320)

    def shown_ids(self) -> list[str]:
        """The versions drawn: those of the state that have scores and still exist."""
        return [v for v in self._state.version_ids if v in self._scores and v in self._tree]

    def front_ids(self) -> list[str]:
        """The Pareto front among the versions scored at the ranking's leading cost (scores
        at other costs are not compared with them)."""
        groups = cost_groups(self._scores, self.shown_ids(), self._state.cost)
        shown = groups[0] if groups else []
        front = taste.pareto_front(
            [self._scores[v].fidelity for v in shown], [self._scores[v].novelty for v in shown]
        )
        return [shown[i] for i in front]

    def point_positions(self) -> dict[str, QPointF]:
        """Where each shown version's point is, in widget coordinates."""
        shown = self.shown_ids()
        if not shown:
            return {}
        area = self._plot_area()
        (x0, x1), (y0, y1) = self._ranges(shown)
        positions = {}
        for vid in shown:
            score = self._scores[vid]
            x = area.left() + (score.novelty - x0) / (x1 - x0) * area.width()
            y = area.bottom() - (score.fidelity - y0) / (y1 - y0) * area.height()
            positions[vid] = QPointF(x, y)
        return positions

    def version_at(self, point: QPointF) -> str | None:
        """The shown version whose thumbnail is under ``point`` (the nearest one wins)."""
        best, best_distance = None, float("inf")
        for vid, centre in self.point_positions().items():
            dx, dy = abs(point.x() - centre.x()), abs(point.y() - centre.y())
            if dx <= THUMB / 2 and dy <= THUMB / 2 and dx + dy < best_distance:
                best, best_distance = vid, dx + dy
        return best

    # ---- drawing ----------------------------------------------------------------------

    def _plot_area(self) -> QRectF:
        inset = THUMB / 2
        return QRectF(
            MARGIN_LEFT + inset,
            MARGIN_TOP + inset,
            max(1.0, self.width() - MARGIN_LEFT - MARGIN_RIGHT - 2 * inset),
            max(1.0, self.height() - MARGIN_TOP - MARGIN_BOTTOM - 2 * inset),
        )

    def _ranges(self, shown: list[str]) -> tuple[tuple[float, float], tuple[float, float]]:
        def span(values: list[float]) -> tuple[float, float]:
            low, high = min(values), max(values)
            if high - low < 1e-9:
                pad = max(abs(low) * 0.05, 1e-3)
                return low - pad, high + pad
            return low, high

        return (
            span([self._scores[v].novelty for v in shown]),
            span([self._scores[v].fidelity for v in shown]),
        )

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        text_colour = self.palette().color(self.foregroundRole())
        frame = QRectF(
            MARGIN_LEFT,
            MARGIN_TOP,
            self.width() - MARGIN_LEFT - MARGIN_RIGHT,
            self.height() - MARGIN_TOP - MARGIN_BOTTOM,
        )
        painter.setPen(QPen(OTHER_COLOUR, 1))
        painter.drawRect(frame)
        shown = self.shown_ids()
        painter.setPen(text_colour)
        bottom = QRectF(MARGIN_LEFT, frame.bottom() + 2, frame.width(), MARGIN_BOTTOM - 2)
        if not shown:
            painter.drawText(frame, Qt.AlignmentFlag.AlignCenter, "No scores yet: Score these")
            return
        (x0, x1), (y0, y1) = self._ranges(shown)
        align_top = Qt.AlignmentFlag.AlignTop
        painter.drawText(bottom, align_top | Qt.AlignmentFlag.AlignLeft, f"{x0:.3f}")
        painter.drawText(bottom, align_top | Qt.AlignmentFlag.AlignRight, f"{x1:.3f}")
        painter.drawText(
            bottom,
            Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter,
            "novelty (bits / dim) →",
        )
        left = QRectF(0, frame.top(), MARGIN_LEFT - 4, frame.height())
        right_top = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop
        painter.drawText(left, right_top, f"{y1:.3f}")
        painter.drawText(
            left, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom, f"{y0:.3f}"
        )
        painter.save()
        painter.translate(12, frame.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-80, -10, 160, 20), Qt.AlignmentFlag.AlignCenter, "fidelity →")
        painter.restore()

        positions = self.point_positions()
        front = self.front_ids()
        if len(front) > 1:
            painter.setPen(QPen(FRONT_COLOUR, 2, Qt.PenStyle.DashLine))
            painter.drawPolyline(QPolygonF([positions[v] for v in front]))
        current = self._current()
        # the front and the version on view are drawn last, so they are on top
        order = sorted(shown, key=lambda v: (v in front, v == current, v == self.hovered))
        for vid in order:
            centre = positions[vid]
            box = QRectF(centre.x() - THUMB / 2, centre.y() - THUMB / 2, THUMB, THUMB)
            image = self._tree.best_image(vid)
            if image is not None:
                painter.drawImage(box, to_qimage(image))
            else:
                painter.fillRect(box, QColor(40, 40, 40))
            if vid == current:
                colour, width = CURRENT_COLOUR, 3
            elif vid in front:
                colour, width = FRONT_COLOUR, 3
            else:
                colour, width = OTHER_COLOUR, 1
            painter.setPen(QPen(colour, width))
            painter.drawRect(box.adjusted(-1, -1, 1, 1))
            if vid in front and vid == current:
                painter.setPen(QPen(FRONT_COLOUR, 2))
                painter.drawRect(box.adjusted(-4, -4, 4, 4))
        if self.hovered in positions:
            painter.setPen(text_colour)
            centre = positions[self.hovered]
            label = self._tree.get(self.hovered).name
            painter.drawText(
                QRectF(centre.x() - 60, centre.y() + THUMB / 2 + 1, 120, 16),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                label,
            )

    # ---- the mouse ----------------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        vid = self.version_at(event.position())
        if vid != self.hovered:
            self.hovered = vid
            self.update()
        if vid is None:
            QToolTip.hideText()
        else:
            text = score_text(self._tree.get(vid).name, self._scores[vid])
            QToolTip.showText(event.globalPosition().toPoint(), text, self)

    def leaveEvent(self, _event: object) -> None:
        if self.hovered is not None:
            self.hovered = None
            self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            vid = self.version_at(event.position())
            if vid is not None:
                self.version_clicked.emit(vid)


class ScoresView(QWidget):
    """The Scores dock (see the module docstring)."""

    score_requested = Signal()
    version_clicked = Signal(str)
    order_brood_requested = Signal()

    def __init__(
        self,
        tree: VersionTree,
        scores: Mapping[str, VersionScores],
        state: TasteState,
        current: Callable[[], str | None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._tree, self._scores, self._state = tree, scores, state
        self.score_button = QPushButton("Score these")
        self.score_button.setToolTip(
            "Score the brood on view, or the selected versions, for fidelity to their "
            "prompt and novelty (Ctrl+Shift+F)"
        )
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v / %m scored")
        self.progress.hide()
        self.cost = QComboBox()
        for key, cost in SCORE_COSTS.items():
            self.cost.addItem(
                f"{COST_LABELS[key]} {cost_text(cost)} · "
                f"{evaluations_per_image(cost)} UNet evaluations / image",
                key,
            )
        self.cost.setToolTip(
            "How many timesteps × noises each score averages: more is steadier and slower"
        )
        header = QHBoxLayout()
        header.addWidget(self.score_button)
        header.addWidget(self.cost)
        header.addWidget(self.progress, 1)
        self.cost_note = QLabel()
        self.cost_note.setWordWrap(True)
        self.cost_note.hide()

        self.plot = ScatterPlot(tree, scores, state, current)
        self.explore = QSlider(Qt.Orientation.Horizontal)
        self.explore.setRange(0, EXPLORE_TICKS)
        self.explore.setToolTip(
            "Exploit (left): most faithful to the prompt first · explore (right): most novel first"
        )
        self.explore_label = QLabel()
        mix = QHBoxLayout()
        mix.addWidget(QLabel("Exploit"))
        mix.addWidget(self.explore, 1)
        mix.addWidget(QLabel("Explore"))
        mix.addWidget(self.explore_label)

        self.sort_key = QComboBox()
        for key in SORT_KEYS:
            self.sort_key.addItem(SORT_LABELS[key], key)
        self.order_brood_button = QPushButton("Order brood by score")
        self.order_brood_button.setToolTip(
            "Put the brood's cells in the order of the combined score at the slider's mix"
        )
        sort_row = QHBoxLayout()
        sort_row.addWidget(QLabel("Sort by"))
        sort_row.addWidget(self.sort_key, 1)
        sort_row.addWidget(self.order_brood_button)

        self.list = QListWidget()
        self.list.setIconSize(QSize(32, 32))
        self.list.setMinimumHeight(90)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(header)
        layout.addWidget(self.cost_note)
        layout.addWidget(self.plot, 3)
        layout.addLayout(mix)
        layout.addLayout(sort_row)
        layout.addWidget(self.list, 2)

        self.score_button.clicked.connect(self.score_requested)
        self.order_brood_button.clicked.connect(self.order_brood_requested)
        self.plot.version_clicked.connect(self.version_clicked)
        self.list.itemClicked.connect(lambda item: self.version_clicked.emit(item.data(_ID_ROLE)))
        self.explore.valueChanged.connect(lambda tick: state.set_explore(tick / EXPLORE_TICKS))
        self.sort_key.currentIndexChanged.connect(
            lambda _i: state.set_sort_key(self.sort_key.currentData())
        )
        self.cost.currentIndexChanged.connect(lambda _i: state.set_cost(self.cost.currentData()))
        state.cost_changed.connect(self._show_cost)
        state.explore_changed.connect(self._show_explore)
        state.sort_key_changed.connect(self._show_sort_key)
        state.versions_changed.connect(self.refresh)
        for signal in (tree.version_renamed, tree.version_removed, tree.result_changed):
            signal.connect(self.refresh)
        self._show_explore(state.explore)
        self._show_sort_key(state.sort_key)
        self._show_cost(state.cost_key)

    def sorted_ids(self) -> list[str]:
        """The list's order: the state's sort key at its explore mix."""
        shown = self.plot.shown_ids()
        return ordered(
            self._scores, shown, self._state.sort_key, self._state.explore, self._state.cost
        )

    def refresh(self, *_args: object) -> None:
        self.list.clear()
        combined = {}
        groups = cost_groups(self._scores, self.plot.shown_ids(), self._state.cost)
        for group in groups:  # the mix is relative to the set: each cost's own
            mixed = taste.combined_scores(
                [self._scores[v].fidelity for v in group],
                [self._scores[v].novelty for v in group],
                self._state.explore,
            )
            combined.update(zip(group, mixed, strict=True))
        self._show_cost_note(groups)
        front = set(self.plot.front_ids())
        key, explore = self._state.sort_key, self._state.explore
        ranked = [
            (rank, vid)
            for g in groups
            for rank, vid in enumerate(ordered(self._scores, g, key, explore), 1)
        ]
        for rank, vid in ranked:  # each cost ranked on its own, from 1
            version = self._tree.get(vid)
            score = self._scores[vid]
            mark = " (front)" if vid in front else ""
            cost = cost_of(score)
            at = "" if cost == self._state.cost else f" · scored at {cost_text(cost)}"
            item = QListWidgetItem(
                f"{rank}. {version.name}{mark} · fidelity {score.fidelity:.3f} · "
                f"novelty {score.novelty:.3f} · mix {combined[vid]:.2f}{at}"
                + (f" · {plugin_text(score)}" if score.plugins else "")
            )
            item.setToolTip(score_text(version.name, score))
            item.setData(_ID_ROLE, vid)
            image = self._tree.best_image(vid)
            if image is not None:
                item.setIcon(QIcon(to_thumbnail(image, 32)))
            self.list.addItem(item)
        self.plot.update()

    def set_progress(self, progress: tuple[int, int] | None) -> None:
        if progress is None:
            self.progress.hide()
            self.score_button.setEnabled(True)
            return
        done, total = progress
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.show()

    def _show_explore(self, explore: float) -> None:
        self.explore.blockSignals(True)
        self.explore.setValue(round(explore * EXPLORE_TICKS))
        self.explore.blockSignals(False)
        self.explore_label.setText(f"{explore:.2f}")
        self.refresh()

    def _show_cost_note(self, groups: list[list[str]]) -> None:
        """Say when the versions on view were scored at more than one cost, or at another
        cost than the one chosen: those are ranked apart, each among its own cost."""
        chosen = self._state.cost
        others = [g for g in groups if cost_of(self._scores[g[0]]) != chosen]
        if not others:
            self.cost_note.hide()
            return
        parts = [f"{len(g)} at {cost_text(cost_of(self._scores[g[0]]))}" for g in others]
        self.cost_note.setText(
            f"Scored at another cost than {cost_text(chosen)}: {', '.join(parts)}. "
            "Each cost is ranked on its own; Score these again to compare them all."
        )
        self.cost_note.show()

    def _show_cost(self, key: str) -> None:
        self.cost.blockSignals(True)
        self.cost.setCurrentIndex(list(SCORE_COSTS).index(key))
        self.cost.blockSignals(False)
        self.refresh()

    def _show_sort_key(self, key: str) -> None:
        self.sort_key.blockSignals(True)
        self.sort_key.setCurrentIndex(SORT_KEYS.index(key))
        self.sort_key.blockSignals(False)
        self.refresh()
