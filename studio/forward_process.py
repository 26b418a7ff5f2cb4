"""The forward (noising) half of an image-to-image version, as its timeline shows it.

An image-to-image or inpaint run starts from its init image pushed into noise to
the step its strength implies. The timeline shows that push before the stored
steps: the init image, then the image at each noise level up to the noised
start, then the way back. These frames are not stored steps: they are computed
by the worker from the recipe alone (``protocol.Forward``; the engine's
``Sampler.forward_previews``: the init latent and the recipe's seeded noise,
``a_k·z_0 + s_k·ε``, through the preview decoder), kept here by version for a
while, and cannot be branched from. Qt-free and torch-free.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from studio.engine.init_pixels import start_index
from studio.engine.recipe import Recipe

FORWARD_CACHE = 16
"""Versions whose forward frames are kept in memory (each a few previews)."""


def forward_recipe(recipe: Recipe) -> Recipe | None:
    """The recipe whose init image a version's trajectory starts from (a branch's root), or
    None when it starts from noise."""
    root = recipe.lineage[0].recipe if recipe.lineage else recipe
    return root if root.init_image else None


def forward_count(recipe: Recipe) -> int:
    """How many forward frames the timeline shows: the init image and one per noise level
    up to the one the first denoising step starts from (0 for text-to-image)."""
    root = forward_recipe(recipe)
    if root is None:
        return 0
    return root.steps - start_index(root.steps, root.strength) + 1


def forward_caption(position: int, count: int) -> str:
    """What the version view says over forward frame ``position`` of ``count``."""
    if position == 0:
        return f"forward 1/{count} — the layer, before any noise"
    return f"forward {position + 1}/{count} — noising the layer (not a stored step)"


class ForwardFrames:
    """The forward frames the worker made, by version id (the most recent few)."""

    def __init__(self) -> None:
        self._frames: OrderedDict[str, tuple[np.ndarray, ...]] = OrderedDict()

    def __contains__(self, version_id: str) -> bool:
        return version_id in self._frames

    def keep(self, version_id: str, frames: tuple[np.ndarray, ...]) -> None:
        self._frames[version_id] = frames
        self._frames.move_to_end(version_id)
        while len(self._frames) > FORWARD_CACHE:
            self._frames.popitem(last=False)

    def frames(self, version_id: str, count: int, init: np.ndarray | None) -> list[np.ndarray]:
        """``count`` frames for the timeline: the worker's, or until they arrive the init image
        and grey placeholders at its size."""
        made = self._frames.get(version_id)
        if made is not None and len(made) == count:
            return list(made)
        side = init.shape[:2] if init is not None else (8, 8)
        grey = np.full((*side, 3), 96, np.uint8)
        first = init[..., :3] if init is not None else grey
        return [first, *([grey] * (count - 1))][:count]
