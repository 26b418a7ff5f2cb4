"""The init images and masks the session's recipes name by content hash.

A recipe that starts from an image names it (and its mask) by
:func:`studio.engine.recipe.image_hash`. The pool keeps those pixels in memory and
in the project file's ``images`` table, and hands the worker the ones a recipe
(its lineage included) needs. Qt-free and torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from studio.engine.init_pixels import mask_of, rgb_of
from studio.engine.recipe import Recipe, RecipeError, image_hash


class InitImagePool:
    """Pixels by content hash; ``store`` (a function giving the open project's store or
    None) persists what is kept and finds what a reopened project's recipes name."""

    def __init__(self, store: Callable[[], Any]) -> None:
        self._store = store
        self._pixels: dict[str, np.ndarray] = {}

    def keep(self, pixels: np.ndarray, kind: str) -> str:
        """Keep an init image (any RGB/RGBA pixels) or a mask (grey, 255 repaints); its hash."""
        pixels = rgb_of(pixels) if kind == "image" else mask_of(pixels)
        digest = image_hash(pixels)
        if digest not in self._pixels:
            self._pixels[digest] = pixels
            store = self._store()
            if store is not None and store.writing:
                store.put_image(digest, kind, pixels)
        return digest

    def get(self, digest: str) -> np.ndarray | None:
        found = self._pixels.get(digest)
        store = self._store()
        if found is None and store is not None:
            found = store.image(digest)
            if found is not None:
                self._pixels[digest] = found
        return found

    def for_recipe(self, recipe: Recipe) -> tuple[np.ndarray, ...]:
        """The pixels ``recipe`` and its lineage name; RecipeError when one is not kept."""
        digests: dict[str, None] = {}
        for r in (*(p.recipe for p in recipe.lineage), recipe):
            for digest in (r.init_image, r.mask):
                if digest:
                    digests[digest] = None
        images = []
        for digest in digests:
            pixels = self.get(digest)
            if pixels is None:
                raise RecipeError(
                    f"The recipe's init image or mask (sha256 {digest[:12]}…) is not in this project."
                )
            images.append(pixels)
        return tuple(images)
