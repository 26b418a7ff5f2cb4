"""The procedural world: sizes, captions and the held-out split."""

from __future__ import annotations

import random

import numpy as np

from studio.training import world


def test_render_has_the_requested_size_and_varies_with_seed() -> None:
    scene = world.Scene("car", "red", "mountain road", "sunset")
    a = world.render(scene, seed=1)
    b = world.render(scene, seed=2)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert world.render(scene, seed=1, size=32).shape == (32, 32, 3)
    assert np.array_equal(a, world.render(scene, seed=1))
    assert not np.array_equal(a, b)


def test_captions_mention_every_attribute() -> None:
    rng = random.Random(0)
    phrases = {**world.PLACE_PHRASES, **world.TIME_PHRASES}
    for scene in random.Random(1).sample(world.all_scenes(), 40):
        caption = scene.caption(rng)
        assert scene.subject in caption and scene.colour in caption
        assert any(p in caption for p in phrases[scene.place])
        assert any(p in caption for p in phrases[scene.time])
    assert (
        world.Scene("car", "red", "mountain road", "sunset").caption()
        == "a red car on a mountain road at sunset"
    )


def test_attributes_are_at_least_four_by_four() -> None:
    assert len(world.ATTRIBUTES) >= 4
    assert all(len(values) >= 4 for values in world.ATTRIBUTES.values())


def test_held_out_combinations_never_appear_in_training() -> None:
    held = world.held_out_scenes()
    assert held and all(world.is_held_out(s) for s in held)
    train = set(world.training_scenes())
    assert train.isdisjoint(held)
    _, scenes = world.sample_dataset(500, seed=3)
    assert not any(world.is_held_out(s) for s in scenes)
    # Every attribute value is still seen in training.
    for values, index in zip(world.ATTRIBUTES.values(), range(4), strict=True):
        assert {s.labels()[index] for s in train} == set(range(len(values)))
    held_captions = {s.caption() for s in held}
    rng = random.Random(5)
    assert held_captions.isdisjoint({s.caption(rng) for s in scenes})
