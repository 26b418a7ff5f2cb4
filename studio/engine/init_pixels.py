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


OUTPAINT_FEATHER = 8
"""Pixels over which an outpainting mask ramps up from the old image's edge."""


def padding_of(text: str) -> tuple[int, int, int, int]:
    """``"L,T,R,B"`` (pixels added on each side) as four whole numbers; ValueError if not."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != 4 or not all(part.isdigit() for part in parts):
        raise ValueError(
            f"The padding must be four whole numbers of pixels, left,top,right,bottom, not {text!r}."
        )
    left, top, right, bottom = (int(part) for part in parts)
    if not left + top + right + bottom:
        raise ValueError("The padding adds no pixels: give at least one side more than 0.")
    return left, top, right, bottom


def grow(known: np.ndarray) -> np.ndarray:
    """``known`` (bool H×W) grown by one pixel in all eight directions."""
    padded = np.pad(known, 1)
    height, width = known.shape
    out = np.zeros_like(known)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + height, dx : dx + width]
    return out


def outpaint_mask(known: np.ndarray, feather: int = OUTPAINT_FEATHER) -> np.ndarray:
    """The mask that repaints what ``known`` (bool H×W) leaves out: 0 on every known pixel
    (so they stay exact), rising over ``feather`` pixels from the known edge to 255."""
    mask = np.full(known.shape, 255, np.uint8)
    mask[known] = 0
    reached = np.asarray(known, bool)
    for distance in range(1, max(1, feather)):
        grown = grow(reached)
        mask[grown & ~reached] = round(255 * distance / feather)
        reached = grown
    return mask


def fill_unknown(rgb: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``rgb`` with the pixels ``known`` leaves out filled: from the nearest edge of the
    known region when it is a rectangle (an extended canvas), else with its mean colour."""
    out = np.array(rgb, np.uint8)
    if known.all() or not known.any():
        return out
    rows, cols = np.flatnonzero(known.any(axis=1)), np.flatnonzero(known.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if known[top:bottom, left:right].all() and known.sum() == (bottom - top) * (right - left):
        pad = ((top, out.shape[0] - bottom), (left, out.shape[1] - right), (0, 0))
        return np.pad(out[top:bottom, left:right], pad, mode="edge")
    out[~known] = np.rint(out[known].mean(axis=0)).astype(np.uint8)
    return out


def outpaint_images(
    rgb: np.ndarray, known: np.ndarray, feather: int = OUTPAINT_FEATHER
) -> tuple[np.ndarray, np.ndarray]:
    """The init image and mask that fill what ``known`` leaves out of ``rgb`` (inpainting
    with a feathered seam): known pixels are exact in the run's final composite."""
    return fill_unknown(rgb, known), outpaint_mask(known, feather)


def pad_for_outpaint(
    rgb: np.ndarray, padding: tuple[int, int, int, int], feather: int = OUTPAINT_FEATHER
) -> tuple[np.ndarray, np.ndarray]:
    """An image extended by ``padding`` (left, top, right, bottom) pixels, as the init image
    and mask of an outpaint: :func:`outpaint_images` with the old image as the known area."""
    left, top, right, bottom = padding
    height, width = rgb.shape[:2]
    known = np.zeros((height + top + bottom, width + left + right), bool)
    known[top : top + height, left : left + width] = True
    canvas = np.zeros((*known.shape, 3), np.uint8)
    canvas[known] = np.asarray(rgb, np.uint8)[..., :3].reshape(-1, 3)
    return outpaint_images(canvas, known, feather)
