"""Resting the pointer on a filmstrip thumbnail pops up that step's full decode, asked of
the worker off the UI thread and cached, so a second hover shows it at once."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel

from studio.protocol import Decode
from studio.ui.filmstrip_hover import HOVER_MS, POPUP_SIDE
from studio.ui.qimage import to_pixmap
from tests.ui.conftest import generate_and_wait


def _hover(qtbot, window, row: int) -> None:
    filmstrip = window.pages.timeline.filmstrip
    rect = filmstrip.visualItemRect(filmstrip.item(row))
    filmstrip.viewport().setFocus()
    qtbot.mouseMove(filmstrip.viewport(), QPoint(rect.left() + 1, rect.top() + 1))
    qtbot.mouseMove(filmstrip.viewport(), rect.center())


def _leave(window) -> None:
    window.pages.timeline.hover.hide()


def _pixels(label) -> np.ndarray:
    image = label.pixmap().toImage()
    return np.array(
        [
            [image.pixelColor(x, y).getRgb()[:3] for x in range(image.width())]
            for y in range(image.height())
        ],
        np.uint8,
    )


def test_hovering_a_thumbnail_shows_its_full_decode_after_a_pause(
    qtbot, window, tiny_model, monkeypatch
):
    from studio.engine.checkpoint import Checkpoint
    from studio.engine.preview import decode

    version = generate_and_wait(qtbot, window)
    hover = window.pages.timeline.hover
    sent: list[Decode] = []
    send = window.session.client.send
    monkeypatch.setattr(
        window.session.client,
        "send",
        lambda request: (isinstance(request, Decode) and sent.append(request), send(request))[1],
    )
    _hover(qtbot, window, 2)
    assert hover.row == 2 and not hover.popup.isVisible()  # not before the pause
    qtbot.wait(HOVER_MS // 2)
    assert not hover.popup.isVisible() and not sent
    qtbot.waitUntil(hover.popup.isVisible, timeout=20_000)
    assert [request.key for request in sent] == [(version.id, 2, "x0")]
    step = window.session.tree.steps.step(version.id, 2)
    expected = decode(tiny_model.vae, Checkpoint.from_bytes(step.checkpoint).x0_pred)
    assert step.preview_x0.shape != expected.shape  # the stored preview is the 16×16 map
    assert np.array_equal(hover.image, expected)
    shown = _pixels(hover.popup)
    assert max(shown.shape[:2]) == POPUP_SIDE, "enlarged past the thumbnail"
    label = QLabel()
    label.setPixmap(
        to_pixmap(expected).scaled(
            POPUP_SIDE,
            POPUP_SIDE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    )
    assert np.array_equal(shown, _pixels(label)), "that decode, enlarged"

    _leave(window)
    assert not hover.popup.isVisible()
    _hover(qtbot, window, 2)  # again: from the session's cache, with no new request
    qtbot.waitUntil(hover.popup.isVisible, timeout=5_000)
    assert len(sent) == 1


def test_an_answer_for_a_thumbnail_the_pointer_left_is_not_shown(qtbot, window):
    generate_and_wait(qtbot, window)
    hover = window.pages.timeline.hover
    _hover(qtbot, window, 1)
    qtbot.waitUntil(lambda: not hover._timer.isActive(), timeout=5_000)
    _leave(window)
    hover.show_image(1, np.zeros((32, 32, 3), np.uint8))
    assert not hover.popup.isVisible()


def test_a_hover_asks_in_its_own_slot_so_the_timelines_decode_is_not_replaced(
    qtbot, window, monkeypatch
):
    generate_and_wait(qtbot, window)
    session = window.session
    sent: list[Decode] = []
    monkeypatch.setattr(session.client, "send", sent.append)  # held: nothing answers
    window.timeline.set_position(2)
    session.request_full_decode(2)
    assert session.request_hover_decode(3) is None
    scrub, hover = sent
    assert (scrub.key[1], scrub.slot) == (2, "view") and (hover.key[1], hover.slot) == (3, "hover")
