"""The window's centre: the version view, the compare view or the layered canvas, above the timeline.

Which page is up is view state (``session.view``: the compare pair, the
canvas toggle); the timeline follows the view's position and reports the
user's scrubbing back to it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QStackedWidget, QVBoxLayout, QWidget

from studio.session import Session
from studio.ui.compare_view import CompareView
from studio.ui.timeline import Timeline
from studio.ui.version_view import VersionView


class Pages(QWidget):
    """The stack of pages and the timeline under them."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.version_view = VersionView(session)
        self.compare = CompareView()
        self.canvas_page: QWidget | None = None
        self.stack = QStackedWidget()
        self.stack.addWidget(self.version_view)
        self.stack.addWidget(self.compare)
        self.timeline = Timeline()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.timeline)

        view = session.view
        self.timeline.position_changed.connect(view.set_position)
        self.timeline.position_settled.connect(session.request_full_decode)
        view.position_changed.connect(self.timeline.set_position)
        session.trajectory_reset.connect(self._reset_timeline)
        session.step_added.connect(self.timeline.append_step)
        view.compare_changed.connect(self._show_compare)
        view.canvas_shown_changed.connect(self._show_canvas)
        self.compare.closed.connect(lambda: view.set_compare(()))
        timeline = self.timeline
        for key, move in (
            (Qt.Key.Key_Left, lambda: self.step_by(-1)),
            (Qt.Key.Key_Right, lambda: self.step_by(1)),
            (Qt.Key.Key_Home, lambda: timeline.set_position(0)),
            (Qt.Key.Key_End, lambda: timeline.set_position(timeline.count() - 1)),
        ):  # arrows scrub while the canvas or the timeline has focus, not while typing
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(move)

    def add_canvas_page(self, page: QWidget) -> None:
        self.canvas_page = page
        self.stack.addWidget(page)

    def step_by(self, delta: int) -> None:
        last = self.timeline.count() - 1
        self.timeline.set_position(max(0, min(last, self.timeline.position() + delta)))

    def _reset_timeline(self) -> None:
        session = self._session
        version = session.current_version()
        if version is None:
            self.timeline.clear()
            return
        numbers = [ref.index for ref in session.trajectory()]
        self.timeline.set_steps(
            numbers, version.recipe.steps, session.thumbnails(), session.view.position
        )

    def _show_compare(self, pair: tuple[str, ...]) -> None:
        if not pair:
            if self.stack.currentWidget() is self.compare:
                self.stack.setCurrentWidget(self.version_view)
            return
        tree = self._session.tree
        a, b = tree.get(pair[0]), tree.get(pair[1])
        self.compare.set_pair(
            a.name,
            tree.best_image(a.id),
            b.name,
            tree.best_image(b.id),
            (a.recipe.width, a.recipe.height),
            (b.recipe.width, b.recipe.height),
        )
        self.stack.setCurrentWidget(self.compare)

    def _show_canvas(self, shown: bool) -> None:
        if shown and self.canvas_page is not None:
            self.stack.setCurrentWidget(self.canvas_page)
        elif self.stack.currentWidget() is self.canvas_page:
            self.stack.setCurrentWidget(self.version_view)
