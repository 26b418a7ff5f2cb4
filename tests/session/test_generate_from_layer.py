"""Image-to-image and inpainting from a layer through the session and the real worker."""

from __future__ import annotations

import numpy as np
import pytest

from studio.document.layers import Layer
from studio.engine.recipe import Recipe, RecipeError, image_hash
from studio.protocol import JobFinished, ModelLoaded
from studio.session import BranchTarget, Session
from tests.session.test_session import _recipe, _tiny_worker


@pytest.fixture
def session(qapp, qtbot, tiny_model_dir):
    made = Session(_tiny_worker(), str(tiny_model_dir))
    with qtbot.waitSignal(
        made.message_handled, timeout=60_000, check_params_cb=lambda m: isinstance(m, ModelLoaded)
    ):
        made.start()
    yield made
    assert made.shutdown()


def _layer_pixels() -> np.ndarray:
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 255, (32, 32, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    return rgba


def _finish(qtbot, session, start):
    with qtbot.waitSignal(
        session.message_handled,
        timeout=60_000,
        check_params_cb=lambda m: isinstance(m, JobFinished),
    ) as finished:
        start()
    return session.tree.get(finished.args[0].version_id)


def test_inpainting_a_layer_makes_a_version_that_keeps_the_outside(qtbot, session, tiny_model_dir):
    pixels = _layer_pixels()
    layer = Layer(pixels, name="photo")
    session.layers.add(layer)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    recipe = _recipe(str(tiny_model_dir))
    version = _finish(
        qtbot, session, lambda: session.generate_from_layer(layer.id, recipe, 0.5, mask)
    )
    assert version.recipe.init_image == image_hash(pixels[..., :3])
    assert version.recipe.mask == image_hash(mask) and version.recipe.strength == 0.5
    assert [ref[1] for ref in session.tree.trajectory(version.id)] == [3, 4, 5]
    result = session.tree.result(version.id)
    assert np.array_equal(result[mask == 0], pixels[..., :3][mask == 0])

    # A branch from its first stored step resumes exactly (the pool hands the pixels again).
    again = _finish(
        qtbot,
        session,
        lambda: session.generate(version.recipe, BranchTarget(version.id, 3)),
    )
    assert np.array_equal(session.tree.result(again.id), result)


def test_a_mask_of_another_size_is_refused_before_anything_runs(session, tiny_model_dir):
    layer = Layer(_layer_pixels())
    session.layers.add(layer)
    with pytest.raises(RecipeError, match=r"The mask is 8×8 pixels but the layer is 32×32\."):
        session.generate_from_layer(
            layer.id, Recipe("x", model=str(tiny_model_dir)), 0.5, np.zeros((8, 8), np.uint8)
        )
    assert not session.jobs
