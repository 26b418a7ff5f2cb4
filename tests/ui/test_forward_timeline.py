"""The forward process on the timeline of an image-to-image version, in the real window."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QInputDialog

from studio.engine.sampler import Sampler
from tests.ui.conftest import generate_and_wait


def img2img_version(qtbot, window, monkeypatch, strength: float = 0.5):
    generate_and_wait(qtbot, window)
    window.workspace.add_action.trigger()
    (layer,) = window.workspace.layers.layers
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *args: (strength, True))
    with qtbot.waitSignal(window.session.tree.version_finished, timeout=120_000) as done:
        window.canvas_generation.from_layer_action.trigger()
    return window.session.tree.get(done.args[0]), layer


def test_the_timeline_shows_the_forward_frames_then_the_stored_steps(
    qtbot, window, monkeypatch, tiny_model
):
    session, timeline = window.session, window.timeline
    version, layer = img2img_version(qtbot, window, monkeypatch)
    assert version.step_indices == [3, 4, 5]
    # asked of the worker when the version came on view (as its run started)
    qtbot.waitUntil(lambda: version.id in session.forward_frames, timeout=60_000)
    session.show_version(version.id)
    forward = session.forward_count()
    assert forward == 4, "the layer, then the noise levels of steps 6, 5 and 4"
    assert timeline.count() == forward + 3 and timeline.position() == forward + 2
    engine = Sampler(tiny_model).forward_previews(
        version.recipe, session.init_images.for_recipe(version.recipe)
    )

    timeline.set_position(0)
    frame = session.frame()
    assert np.array_equal(frame.image, layer.pixels[..., :3])
    assert "forward 1/4" in frame.caption and frame.step is None
    assert timeline.label.text() == "forward 1 / 4"
    timeline.set_position(forward - 1)
    frame = session.frame()
    assert "forward 4/4 — noising the layer" in frame.caption
    assert np.array_equal(frame.image, engine[-1]), "the noised start, as the engine makes it"
    assert timeline.filmstrip.item(forward - 1).text() == "f4"
    timeline.set_position(forward)
    assert "step 4 / 6" in session.frame().caption, "then the stored steps"
    assert timeline.label.text() == "step 4 / 6"

    target, description = session.branch_target(1)
    assert target.step_index == 3 and "not stored steps" in description
    assert timeline.branch_button.text() == "Branch from this step"
    timeline.set_position(2)
    assert timeline.branch_button.text() == "Branch from first step"


def test_a_text_to_image_version_has_no_forward_frames(qtbot, window):
    version = generate_and_wait(qtbot, window)
    window.session.show_version(version.id)
    assert window.session.forward_count() == 0
    assert window.timeline.count() == 6 and window.timeline.label.text() == "step 6 / 6"
