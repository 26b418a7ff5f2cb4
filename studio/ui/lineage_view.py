"""The lineage view: the version graph drawn whole, bred children joined to every parent.

:func:`lineage_graph` lays the tree out (no Qt): a version sits one row below the
lowest of its parents, a branch's edge to its parent says the step it resumed
after, a bred child's edge to each parent says that parent's weight in the
cross. :class:`LineageView` paints that graph with thumbnails, frames the version
on view, and sends a click on a node back as ``version_clicked``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.document.versions import VersionTree
from studio.ui.qimage import to_qimage

NODE = 44
LABEL_HEIGHT = 16
COLUMN_GAP = 28
ROW_GAP = 46
MARGIN = 12
EDGE_COLOUR = QColor(130, 130, 130)
BRED_COLOUR = QColor(255, 170, 0)
CURRENT_COLOUR = QColor(80, 160, 255)


@dataclass(frozen=True)
class LineageEdge:
    """From a version to one of its parents; ``bred`` for a cross (else a branch)."""

    child: str
    parent: str
    label: str
    bred: bool


@dataclass(frozen=True)
class LineageGraph:
    """Each version's (row, column), rows from the versions started from noise down, and
    the edges to every parent."""

    places: dict[str, tuple[int, int]]
    edges: list[LineageEdge]


def lineage_graph(tree: VersionTree) -> LineageGraph:
    edges: list[LineageEdge] = []
    parents: dict[str, list[str]] = {}
    for version in tree.versions():
        seen: list[str] = []
        for parent_id, weight in version.bred_from:
            if parent_id in tree and parent_id not in seen:
                edges.append(LineageEdge(version.id, parent_id, f"× {weight:g}", True))
                seen.append(parent_id)
        branch_parent = version.parent_id
        if branch_parent in tree and version.branch_step is not None and branch_parent not in seen:
            label = f"step {version.branch_step + 1}"
            edges.append(LineageEdge(version.id, branch_parent, label, False))
            seen.append(branch_parent)
        parents[version.id] = seen
    rows: dict[str, int] = {}
    for version in tree.versions():  # parents are always older than their children
        rows[version.id] = 1 + max((rows.get(p, 0) for p in parents[version.id]), default=-1)
    columns: dict[int, int] = {}
    places = {}
    for version in tree.versions():
        row = rows[version.id]
        places[version.id] = (row, columns.get(row, 0))
        columns[row] = columns.get(row, 0) + 1
    return LineageGraph(places, edges)


class LineageView(QWidget):
    """Paints :func:`lineage_graph` of ``tree`` (see the module docstring)."""

    version_clicked = Signal(str)

    def __init__(
        self,
        tree: VersionTree,
        current: Callable[[], str | None],
        parent: QWidget | None = None,
    ) -> None:
        """``current()`` gives the id of the version on view (or None)."""
        super().__init__(parent)
        self._tree, self._current = tree, current
        self._graph: LineageGraph | None = None
        self._resize_soon = QTimer(self, singleShot=True, interval=0)
        self._resize_soon.timeout.connect(self._resize)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        for signal in (tree.version_added, tree.version_removed, tree.version_renamed):
            signal.connect(self.relayout)
        for signal in (tree.version_finished, tree.result_changed, tree.step_appended):
            signal.connect(lambda *_args: self.update())
        self.relayout()

    @property
    def graph(self) -> LineageGraph:
        """The layout of the tree as it is now (laid out again only when read after a change)."""
        if self._graph is None:
            self._graph = lineage_graph(self._tree)
        return self._graph

    def relayout(self, *_args: object) -> None:
        # Opening a project adds every version in one go: lay out and resize once, after it,
        # not once per version (a thousand layouts of a thousand versions).
        self._graph = None
        self._resize_soon.start()

    def _resize(self) -> None:
        self.setMinimumSize(self.sizeHint())
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        places = self.graph.places.values()
        rows = 1 + max((r for r, _ in places), default=0)
        columns = 1 + max((c for _, c in places), default=0)
        return QSize(
            2 * MARGIN + columns * (NODE + COLUMN_GAP),
            2 * MARGIN + rows * (NODE + LABEL_HEIGHT + ROW_GAP),
        )

    def node_rect(self, version_id: str) -> QRectF:
        row, column = self.graph.places[version_id]
        x = MARGIN + column * (NODE + COLUMN_GAP)
        y = MARGIN + row * (NODE + LABEL_HEIGHT + ROW_GAP)
        return QRectF(x, y, NODE, NODE)

    def version_at(self, point: QPointF) -> str | None:
        for version_id in self.graph.places:
            if self.node_rect(version_id).adjusted(0, 0, 0, LABEL_HEIGHT).contains(point):
                return version_id
        return None

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text_colour = self.palette().color(self.foregroundRole())
        if not self.graph.places:
            painter.setPen(text_colour)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No versions yet.")
            return
        for edge in self.graph.edges:
            child, parent = self.node_rect(edge.child), self.node_rect(edge.parent)
            start = QPointF(child.center().x(), child.top())
            end = QPointF(parent.center().x(), parent.bottom() + LABEL_HEIGHT)
            colour = BRED_COLOUR if edge.bred else EDGE_COLOUR
            painter.setPen(QPen(colour, 2 if edge.bred else 1))
            painter.drawLine(start, end)
            middle = (start + end) / 2
            painter.setPen(text_colour)
            painter.drawText(
                QRectF(middle.x() - 40, middle.y() - 8, 80, 16),
                Qt.AlignmentFlag.AlignCenter,
                edge.label,
            )
        current = self._current()
        for version_id in self.graph.places:
            box = self.node_rect(version_id)
            image = self._tree.best_image(version_id)
            if image is not None:
                painter.drawImage(box, to_qimage(image))
            else:
                painter.fillRect(box, QColor(40, 40, 40))
            is_current = version_id == current
            painter.setPen(
                QPen(CURRENT_COLOUR if is_current else EDGE_COLOUR, 3 if is_current else 1)
            )
            painter.drawRect(box.adjusted(-1, -1, 1, 1))
            painter.setPen(text_colour)
            painter.drawText(
                QRectF(
                    box.left() - COLUMN_GAP / 2, box.bottom() + 1, NODE + COLUMN_GAP, LABEL_HEIGHT
                ),
                Qt.AlignmentFlag.AlignCenter,
                self._tree.get(version_id).name,
            )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            version_id = self.version_at(event.position())
            if version_id is not None:
                self.version_clicked.emit(version_id)
