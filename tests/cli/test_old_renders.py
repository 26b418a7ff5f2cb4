"""Renders made before the noise genome, temperature and lineage existed still reproduce.

The hashes were taken with the bundled model on CPU (float32, one thread) before
those fields were added to the recipe; a recipe that does not use them must give
the same pixels, bit for bit, from then on.
"""

from __future__ import annotations

import hashlib

import pytest

from studio.cli import build_parser, run
from studio.engine import noise

OLD_RENDERS = [
    (
        ["--prompt", "a red house", "--seed", "3", "--sampler", "Euler a"],
        "caec824b04f6ce8876e55dce2c4c79cb0455853ae589d0e0ed371e13a14f8c85",
    ),
    (
        [
            "--prompt",
            "a red house",
            "--seed",
            "3",
            "--sampler",
            "Euler a",
            "--variation-seed",
            "2",
            "--variation-strength",
            "0.5",
        ],
        "d6ae3ebef5d798e081b1aa764129b45ccefc37301576db80a5cb3f8cd6f0732a",
    ),
    (
        [
            "--prompt",
            "a tree by the sea",
            "--seed",
            "5",
            "--sampler",
            "DPM++ 2M SDE",
            "--variation-seed",
            "9",
            "--variation-strength",
            "0.3",
        ],
        "5708857dd24e7de4fc8e9d4590fa2e9896f75a32d00533c481939fdd645ca143",
    ),
    (
        [
            "--prompt",
            "a tree by the sea",
            "--seed",
            "7",
            "--sampler",
            "DDIM",
            "--cfg",
            "5",
            "--variation-seed",
            "11",
            "--variation-strength",
            "0.7",
        ],
        "de6501f036866ef1afc2d7db7126bc96bc3071c3d03f7581277a507b09f518ce",
    ),
    (
        ["--prompt", "a boat at night", "--seed", "12", "--sampler", "DPM++ 2M Karras"],
        "6717a33be388c146167f4c92c92884018c24a7788c6cd893da39ad5910eed8af",
    ),
]

OLD_START_NOISE = [
    ((3, (1, 4, 8, 8)), "33dc977b3069e5acdd4a44d223adb35d01472f910a461bc12ca134c0dde8c2b4"),
    ((3, (1, 4, 8, 8), 2, 0.5), "3fbabe6843fc5a703bbc535a9cfc110a91b7e46c1e610ed71e4e86e4ec6a3792"),
    ((5, (2, 4, 6, 6), 9, 0.3), "56809f1d8cc3c93465abca99d48b17225cccfea49a82ce88e3800c0b3723436b"),
    ((1, (1, 4, 8, 8), 1, 0.5), "b434e9c70342ba89b171084327dc67ce9950f9608749dbc5f34ab4e9565126c9"),
]


@pytest.mark.parametrize(("args", "sha256"), OLD_START_NOISE)
def test_old_start_noise_is_unchanged(args, sha256):
    assert hashlib.sha256(noise.start_noise(*args).numpy().tobytes()).hexdigest() == sha256


@pytest.mark.parametrize(("args", "sha256"), OLD_RENDERS)
def test_old_bundled_renders_reproduce(args, sha256):
    summary = run(build_parser().parse_args([*args, "--steps", "8"]))
    assert summary["sha256"] == sha256


def test_old_branch_with_branch_noise_reproduces(tmp_path):
    checkpoint = tmp_path / "k4.ckpt"
    parent = ["--prompt", "a red house", "--seed", "3", "--steps", "8", "--sampler", "DPM++ 2M SDE"]
    summary = run(build_parser().parse_args([*parent, "--checkpoint-at", "4", str(checkpoint)]))
    assert summary["sha256"] == "53f8720cc884669b6761af709a69d3065d8cf21bb002cecdc91b2eb60f7a5f28"
    branch = ["--resume", str(checkpoint), "--prompt", "a blue house", "--cfg", "9"]
    branch += ["--renoise-seed", "77", "--renoise-strength", "0.4"]
    summary = run(build_parser().parse_args(branch))
    assert summary["sha256"] == "0955b626325ea704d146200242eb07a081f95096c1721caa24e04f60d75da101"
