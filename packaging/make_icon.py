"""Draw the app icon, studio/resources/desktop/noise-studio.png, procedurally (run once; shipped).

``.venv/bin/python packaging/make_icon.py``: a rounded tile whose left half is seeded noise
that resolves, column band by column band, into a smooth sunset gradient with a sun: a
picture being denoised, step by step. Deterministic: the same bytes every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 128
OUT = Path(__file__).resolve().parents[1] / "studio" / "resources" / "desktop" / "noise-studio.png"


def draw(size: int = SIZE) -> Image.Image:
    rng = np.random.default_rng(7)
    y = np.linspace(0.0, 1.0, size)[:, None, None]
    top, bottom = np.array([40, 30, 110]), np.array([250, 150, 70])
    clean = np.broadcast_to(top + (bottom - top) * y, (size, size, 3)).copy()
    yy, xx = np.mgrid[0:size, 0:size]
    sun = (xx - size * 0.62) ** 2 + (yy - size * 0.58) ** 2 < (size * 0.16) ** 2
    clean[sun] = [255, 235, 160]
    noise = rng.uniform(0, 255, (size // 8, size // 8, 3)).repeat(8, 0).repeat(8, 1)
    # Noise fades out from left to right in four bands, like steps of a sampler.
    amount = np.clip(1.0 - np.floor(xx / (size / 4)) / 3, 0, 1)[..., None]
    pixels = (noise * amount + clean * (1 - amount)).clip(0, 255).astype(np.uint8)
    tile = Image.fromarray(pixels, "RGB").convert("RGBA")
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 6, fill=255)
    tile.putalpha(mask)
    return tile


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    draw().save(OUT, optimize=True)
    print(f"{OUT} ({OUT.stat().st_size} bytes)")
