"""Init images and masks as pixels, without torch: what the window and the CLI prepare
before a run that starts from an image (see :mod:`studio.engine.img2img`)."""

from __future__ import annotations

import numpy as np


def start_index(steps: int, strength: float) -> int:
    """The first step an image-to-image run denoises (``steps`` when it runs none)."""
    return steps - min(int(steps * strength), steps)


def rgb_of(pixels: np.ndarray) -> np.ndarray:
    """An RGB init image from RGB or straight RGBA pixels (transparency over white)."""
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = pixels[..., 3:4].astype(np.float32) / 255.0
        mixed = pixels[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.rint(mixed).astype(np.uint8)
    return np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)


def mask_of(pixels: np.ndarray) -> np.ndarray:
    """A grey mask (255 repaints) from a mask picture: its brightness, times its opacity."""
    if pixels.ndim == 2:
        return np.ascontiguousarray(pixels, dtype=np.uint8)
    rgb = pixels[..., :3].astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    if pixels.shape[2] == 4:
        grey = grey * (pixels[..., 3].astype(np.float32) / 255.0)
    return np.rint(grey).clip(0, 255).astype(np.uint8)
