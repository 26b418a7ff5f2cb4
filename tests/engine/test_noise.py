from __future__ import annotations

import torch

from studio.engine import noise


def test_seeded_noise_is_reproducible_and_seed_dependent():
    a = noise.seeded_noise(42, (1, 4, 8, 8))
    assert torch.equal(a, noise.seeded_noise(42, (1, 4, 8, 8)))
    assert not torch.equal(a, noise.seeded_noise(43, (1, 4, 8, 8)))


def test_huge_seeds_work():
    assert noise.seeded_noise(2**64 - 1, (1, 4, 2, 2)).shape == (1, 4, 2, 2)


def test_step_noise_depends_only_on_seed_and_step():
    first = noise.step_noise(7, 3, (1, 4, 4, 4))
    noise.step_noise(7, 2, (1, 4, 4, 4))  # drawing other steps in between changes nothing
    assert torch.equal(first, noise.step_noise(7, 3, (1, 4, 4, 4)))
    assert not torch.equal(first, noise.step_noise(7, 4, (1, 4, 4, 4)))
    assert not torch.equal(first, noise.step_noise(8, 3, (1, 4, 4, 4)))


def test_slerp_endpoints_and_norm():
    low, high = noise.seeded_noise(1, (1, 4, 16, 16)), noise.seeded_noise(2, (1, 4, 16, 16))
    assert torch.allclose(noise.slerp(0.0, low, high), low, atol=1e-6)
    assert torch.allclose(noise.slerp(1.0, low, high), high, atol=1e-6)
    middle = noise.slerp(0.5, low, high)
    # slerp keeps the noise on the sphere: its norm stays close to the ends', unlike lerp
    assert abs(middle.norm() - low.norm()) / low.norm() < 0.05
    assert (0.5 * low + 0.5 * high).norm() < 0.8 * low.norm()


def test_variation_changes_start_noise_by_strength():
    base = noise.start_noise(1, (1, 4, 8, 8))
    assert torch.equal(noise.start_noise(1, (1, 4, 8, 8), 9, 0.0), base)
    slight = noise.start_noise(1, (1, 4, 8, 8), 9, 0.1)
    strong = noise.start_noise(1, (1, 4, 8, 8), 9, 0.9)
    assert (slight - base).norm() < (strong - base).norm()
