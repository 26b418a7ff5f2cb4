"""The window's centre: the version view, the compare view, the canvas or a brood, above the timeline.

Which page is up is view state (``session.view``: the compare pair, the
canvas toggle); the timeline follows the view's position and reports the
user's scrubbing back to it.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QSizePolicy,
    QStackedWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from studio.session import Session
from studio.ui.brood_view import BroodView
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
        self.brood_page: BroodView | None = None
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
        session.thumbnails_read.connect(self.timeline.replace_thumbnails)
        self.timeline.hover.requested.connect(self._hover_decode)
        session.hover_decoded.connect(self.timeline.hover.show_image)
        session.trajectory_reset.connect(self.timeline.hover.hide)
        view.compare_changed.connect(self._show_compare)
        view.position_changed.connect(self._draw_compare)
        view.canvas_shown_changed.connect(self._show_canvas)
        self.compare.closed.connect(lambda: view.set_compare(()))
        self.compare.side_changed.connect(view.set_compare_side)
        self.timeline.filmstrip.itemClicked.connect(
            lambda _item: self.version_view.canvas.setFocus()
        )
        self._keys = ScrubKeys(self)
        QApplication.instance().installEventFilter(self._keys)

    def add_canvas_page(self, page: QWidget) -> None:
        self.canvas_page = page
        self.stack.addWidget(page)

    def add_brood_page(self, page: BroodView) -> None:
        self.brood_page = page
        self.add_page(page)

    def add_page(self, page: QWidget) -> None:
        """A feature's page (a brood, a grid) in the stack."""
        # its header is wide; it may be cut rather than widen the window past 1024
        policy = page.sizePolicy()
        policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
        page.setSizePolicy(policy)
        self.stack.addWidget(page)

    def scrub_key(self, key: int) -> bool:
        """Left/Right step, Home/End jump, Space flips A/B (or plays); False if not ours.
        A brood on view takes the arrows, Return and Space for its cells."""
        timeline = self.timeline
        page = self.stack.currentWidget()
        if page is not None and page is self.brood_page and page.handle_key(key):
            return True
        if key == Qt.Key.Key_Left:
            self.step_by(-1)
        elif key == Qt.Key.Key_Right:
            self.step_by(1)
        elif key == Qt.Key.Key_Home:
            timeline.set_position(0)
        elif key == Qt.Key.Key_End:
            timeline.set_position(timeline.count() - 1)
        elif key == Qt.Key.Key_Space and self.stack.currentWidget() is self.compare:
            self.compare.flip()
        elif key == Qt.Key.Key_Space and timeline.count():
            timeline.play_button.toggle()
        else:
            return False
        return True

    def step_by(self, delta: int) -> None:
        last = self.timeline.count() - 1
        self.timeline.set_position(max(0, min(last, self.timeline.position() + delta)))

    def _hover_decode(self, position: int) -> None:
        image = self._session.request_hover_decode(position)
        if image is not None:
            self.timeline.hover.show_image(position, image)

    def _reset_timeline(self) -> None:
        session = self._session
        version = session.current_version()
        if version is None:
            self.timeline.clear()
            return
        numbers = [ref.index for ref in session.trajectory()]
        self.timeline.set_steps(
            numbers,
            version.recipe.steps,
            session.thumbnails(),
            session.view.position,
            forward=session.forward_count(),
        )

    def _show_compare(self, pair: tuple[str, ...]) -> None:
        if not pair:
            if self.stack.currentWidget() is self.compare:
                self.stack.setCurrentWidget(self.version_view)
            return
        self._draw_compare(from_a=True)
        self.stack.setCurrentWidget(self.compare)

    def _draw_compare(self, *_args: object, from_a: bool = False) -> None:
        """Both panes at the timeline's point (the same fraction of runs of other lengths)."""
        frames = self._session.compare_frames()
        if frames is None:
            return
        a, b = frames
        self.compare.set_pair(a.caption, a.image, b.caption, b.image, a.size, b.size, from_a=from_a)

    def _show_canvas(self, shown: bool) -> None:
        if shown and self.canvas_page is not None:
            self.stack.setCurrentWidget(self.canvas_page)
        elif self.stack.currentWidget() is self.canvas_page:
            self.stack.setCurrentWidget(self.version_view)


_SCRUB_KEYS = {
    Qt.Key.Key_Left,
    Qt.Key.Key_Right,
    Qt.Key.Key_Home,
    Qt.Key.Key_End,
    Qt.Key.Key_Space,
    *(Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter),  # a brood's cells
}
_TEXT_INPUTS = (QLineEdit, QPlainTextEdit, QTextEdit, QAbstractSpinBox)


class ScrubKeys(QObject):
    """Timeline and A/B keys anywhere in the window while no text field has focus, the
    usual rule in Krita and video editors; inside a prompt or a number box they edit text."""

    def __init__(self, pages: Pages) -> None:
        super().__init__(pages)
        self._pages = pages

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        if (
            event.key() not in _SCRUB_KEYS
            or event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ):
            return False
        window = self._pages.window()
        if not isinstance(watched, QWidget) or watched.window() is not window:
            return False
        focus = QApplication.focusWidget()
        if isinstance(focus, _TEXT_INPUTS) or (isinstance(focus, QComboBox) and focus.isEditable()):
            return False
        return self._pages.scrub_key(event.key())
