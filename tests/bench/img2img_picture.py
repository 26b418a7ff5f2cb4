"""The README picture of image-to-image and inpainting, with the bundled model at 64×64.

Top row: a layer (a text-to-image render), its forward process to static at strength
0.6 (``Sampler.forward_previews``, the frames the timeline shows: the init latent
noised to each step's level with the recipe's seed, through the preview decoder),
then the image-to-image result. Bottom row: a mask painted with the canvas's brush
(``canvas_mask.stroke``), drawn over the layer as mask mode shows it, and the
inpainted result (pixels outside the mask are the layer's, exactly).

    python tests/bench/img2img_picture.py [resources/docs/img2img.png]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from studio.document.canvas_mask import stroke
from studio.engine.models import load_model
from studio.engine.recipe import Recipe, image_hash
from studio.engine.sampler import Sampler
from studio.ui.mask_overlay import MASK_COLOUR, MASK_OPACITY

STEPS, STRENGTH, CELL = 20, 0.6, 128


def main(out: Path) -> None:
    began = time.perf_counter()
    sampler = Sampler(load_model("bundled", device="cpu"))
    layer = sampler.render(Recipe("a red house on green grass", seed=7, steps=STEPS))[1]
    recipe = Recipe(
        "a blue lake under a blue sky",
        seed=3,
        steps=STEPS,
        init_image=image_hash(layer),
        strength=STRENGTH,
    )
    frames = sampler.forward_previews(recipe, (layer,))
    shown = np.linspace(0, len(frames) - 1, 4).round().astype(int)
    result = sampler.render(recipe, images=(layer,))[1]
    mask = np.zeros(layer.shape[:2], np.uint8)
    for start, end in (((22, 14), (50, 14)), ((50, 14), (44, 34)), ((44, 34), (26, 30))):
        stroke(mask, start, end, radius=9.0, hardness=0.6, erase=False)
    inpaint = recipe.with_changes(strength=1.0, mask=image_hash(mask))
    inpainted = sampler.render(inpaint, images=(layer, mask))[1]
    assert np.array_equal(inpainted[mask == 0], layer[mask == 0])

    top = [("layer", layer)] + [(f"forward {k + 1}/{len(frames)}", frames[k]) for k in shown[1:]]
    top[-1] = (f"static at {STRENGTH:.0%}", frames[-1])
    top.append((f"img2img {STRENGTH:.0%}", result))
    weight = mask[..., None].astype(np.float32) / 255.0 * MASK_OPACITY
    overlay = layer * (1.0 - weight) + np.array(MASK_COLOUR, np.float32) * weight
    bottom = [
        ("mask, painted", np.rint(overlay).astype(np.uint8)),
        ("inpainted", inpainted),
    ]
    sheet = Image.new("RGB", (CELL * len(top), (CELL + 16) * 2), "white")
    draw = ImageDraw.Draw(sheet)
    for row, cells in enumerate((top, bottom)):
        for col, (caption, pixels) in enumerate(cells):
            image = Image.fromarray(pixels).resize((CELL, CELL), Image.Resampling.NEAREST)
            sheet.paste(image, (col * CELL, row * (CELL + 16)))
            draw.text((col * CELL + 3, row * (CELL + 16) + CELL + 2), caption, fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(f"wrote {out} in {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "resources/docs/img2img.png"))
