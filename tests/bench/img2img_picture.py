"""The README picture of image-to-image and inpainting, with the bundled model at 64×64.

Top row: a layer (a text-to-image render), its forward process to static at strength
0.6 (the init latent noised to each step's level with the recipe's seed, decoded by
the VAE), then the image-to-image result. Bottom row: the mask (white repaints) and
the inpainted result (pixels outside the mask are the layer's, exactly).

    python tests/bench/img2img_picture.py [resources/docs/img2img.png]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from studio.engine import img2img, schedulers
from studio.engine.models import load_model
from studio.engine.recipe import Recipe, image_hash
from studio.engine.sampler import Sampler, _start_latent

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
    scheduler = schedulers.build_scheduler(
        recipe.sampler, sampler.model.scheduler_config, STEPS, sampler.model.device
    )
    first = img2img.start_index(STEPS, STRENGTH)
    init = img2img.init_latents(
        sampler.model, recipe, (layer,), _start_latent(recipe, sampler.latent_shape(recipe))
    )
    forward = []
    for index in np.linspace(STEPS, first, 4).round().astype(int):
        forward.append(
            sampler.decode(init.noised(schedulers.noise_levels(scheduler, recipe.sampler, index)))
        )
    result = sampler.render(recipe, images=(layer,))[1]
    mask = np.zeros(layer.shape[:2], np.uint8)
    mask[8:40, 24:60] = 255
    inpaint = recipe.with_changes(strength=1.0, mask=image_hash(mask))
    inpainted = sampler.render(inpaint, images=(layer, mask))[1]
    assert np.array_equal(inpainted[mask == 0], layer[mask == 0])

    top = [("layer", layer)] + [
        (f"forward, step {k}" if k < STEPS else "forward: the image", f)
        for k, f in zip(np.linspace(STEPS, first, 4).round().astype(int), forward, strict=True)
    ]
    top[-1] = (f"static at {STRENGTH:.0%}", forward[-1])
    top.append((f"img2img {STRENGTH:.0%}", result))
    bottom = [
        ("mask (white repaints)", np.repeat(mask[..., None], 3, -1)),
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
