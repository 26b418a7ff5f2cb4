"""The version view: the canvas page with its caption, the x_t toggle and Fit, following the session.

It draws :meth:`Session.frame` whenever the session says the frame changed,
and holds no state of its own beyond the widgets.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.session import Session
from studio.ui.canvas import Canvas


class VersionView(QWidget):
    """The step on view of the version on view, captioned "v3 · step 5 / 20 · x0-hat · preview"."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.canvas = Canvas()
        self.caption = QLabel("Type a prompt and press Generate (Ctrl+Enter).")
        self.caption.setStyleSheet("padding: 2px 6px;")
        self.caption.setMinimumWidth(60)  # a long caption is cut, never widens the window
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.fit_button = QToolButton()
        self.fit_button.setText("Fit")
        self.static_button = QToolButton()
        self.static_button.setText("Static (x_t)")
        self.static_button.setCheckable(True)
        self.static_button.setToolTip(
            "Show the noisy latent x_t instead of the predicted image x0-hat"
        )
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.caption, 1)
        header.addWidget(self.static_button)
        header.addWidget(self.fit_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.canvas, 1)

        self.fit_button.clicked.connect(self.canvas.fit)
        self.static_button.toggled.connect(session.view.set_static)
        session.view.static_changed.connect(self.static_button.setChecked)
        session.frame_changed.connect(self.redraw)

    def redraw(self) -> None:
        frame = self._session.frame()
        self.canvas.show_image(frame.image, frame.size)
        self.caption.setText(frame.caption)
