"""Starting from an image: image-to-image at a strength, and masked inpainting.

A recipe names its init image and mask by content hash (:func:`image_hash`): the
sha256 of a short header (``"RGB 64x48\\n"`` or ``"L 64x48\\n"``, width first)
followed by the row-major uint8 pixels. Pixels, not file bytes, so the same image
saved by any program has the same hash. The caller hands the pixels to the sampler
(``images=``); the sampler finds each by its hash.

- **Strength.** ``s`` in [0, 1] picks how far the image is pushed into noise, as
  diffusers' img2img pipelines do: ``init = min(int(steps * s), steps)`` steps are
  run, from step ``steps - init`` on. Strength 1 starts from the recipe's noise
  alone (diffusers' ``is_strength_max``), so it is text-to-image bit for bit;
  strength 0 runs no step and gives back the image through the VAE.
- **Forward noising.** The latent at step k is ``a_k * z_0 + s_k * ε``, the
  scheduler's own noise levels (what ``scheduler.add_noise`` computes, but from
  the step's index alone, so a resume needs no scheduler state), with ``z_0`` the
  VAE's deterministic encoding (the latent distribution's mode, scaled) and ``ε``
  the recipe's start noise (its seed, genome and temperature), drawn on the CPU.
- **Inpainting, model-agnostic.** After every step the known region (mask 0) is
  put back from ``z_0`` noised to the level just reached, with the same ``ε``;
  the latent mask is the pixel mask averaged down to latent size, grown by one
  latent pixel and blurred (a feathered edge). The final image is composited in
  pixels: wherever the mask is 0 the pixels are exactly the init image's.
- **A true inpainting UNet** (its input is 2 × latent + 1 channels, 9 for SD): every
  step feeds it ``cat([x_t scaled, mask at latent size, masked image's latent])`` as
  diffusers' inpaint pipeline does (:func:`inpainting_input`), and nothing is blended
  back; the final image is composited in pixels just the same. Such a model without a
  mask repaints everything (an all-ones mask and a zero image, as diffusers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from studio.engine.init_pixels import start_index
from studio.engine.recipe import Recipe, RecipeError, image_hash

# Re-exported: the hash lives beside the recipe that names images by it, the start step
# beside the pixel helpers the window uses without torch.
__all__ = ["image_hash", "start_index"]


def find_image(images: Sequence[np.ndarray], digest: str, what: str) -> np.ndarray:
    """The one of ``images`` whose :func:`image_hash` is ``digest``."""
    for pixels in images:
        if image_hash(pixels) == digest:
            return np.ascontiguousarray(pixels, dtype=np.uint8)
    raise RecipeError(f"The recipe's {what} (sha256 {digest[:12]}…) was not given to the run.")


def _normalized(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float()
    return x / 127.5 - 1.0


@torch.no_grad()
def encode_image(model: object, pixels: np.ndarray) -> torch.Tensor:
    """The VAE's deterministic latent of uint8 H×W×3 pixels: the distribution's mode, scaled."""
    return encode_normalized(model, _normalized(pixels))


@torch.no_grad()
def encode_normalized(model: object, x: torch.Tensor) -> torch.Tensor:
    """The VAE's deterministic latent of a (1, 3, H, W) image in [-1, 1]."""
    vae = model.vae  # type: ignore[attr-defined]
    x = x.to(vae.device, vae.dtype)
    latent = vae.encode(x).latent_dist.mode().to(torch.float32)
    shift = getattr(vae.config, "shift_factor", None)
    if shift:
        latent = latent - shift
    return latent * vae.config.scaling_factor


def latent_mask(mask: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """The pixel mask (uint8, 255 = repaint) at latent size, with a feathered edge."""
    pixels = torch.from_numpy(np.ascontiguousarray(mask)).float()[None, None] / 255.0
    small = torch.nn.functional.interpolate(pixels, size=tuple(shape[-2:]), mode="area")
    grown = torch.nn.functional.max_pool2d(small, 3, stride=1, padding=1)
    feathered = torch.nn.functional.avg_pool2d(
        grown, 3, stride=1, padding=1, count_include_pad=False
    )
    return torch.maximum(small, feathered).clamp(0.0, 1.0)


def composite(decoded: np.ndarray, init: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The decoded image inside the mask, the init image's exact pixels outside it."""
    weight = mask.astype(np.float32)[..., None] / 255.0
    mixed = init.astype(np.float32) * (1.0 - weight) + decoded.astype(np.float32) * weight
    out = np.rint(mixed).clip(0, 255).astype(np.uint8)
    out[mask == 0] = init[mask == 0]
    return out


def check_images(recipe: Recipe, init: np.ndarray, mask: np.ndarray | None) -> None:
    """One clear sentence when the init image or mask does not fit the recipe."""
    if init.ndim != 3 or init.shape[2] != 3:
        raise RecipeError("The init image must be an RGB image.")
    if init.shape[:2] != (recipe.height, recipe.width):
        raise RecipeError(
            f"The init image is {init.shape[1]}×{init.shape[0]} pixels but the recipe's size "
            f"is {recipe.width}×{recipe.height}."
        )
    if mask is not None and mask.shape != init.shape[:2]:
        raise RecipeError(
            f"The mask is {mask.shape[-1]}×{mask.shape[0]} pixels but the init image is "
            f"{init.shape[1]}×{init.shape[0]}."
        )


@dataclass(frozen=True, eq=False)
class InitLatents:
    """What an image-to-image run needs at every step: ``z_0``, ``ε`` and the latent mask."""

    image: np.ndarray
    mask_pixels: np.ndarray | None
    latent: torch.Tensor
    noise: torch.Tensor
    mask: torch.Tensor | None

    def noised(self, level: tuple[float, float]) -> torch.Tensor:
        """``z_0`` pushed forward to a noise level (a, s) with the run's own noise."""
        a, s = level
        return a * self.latent + s * self.noise

    def keep_known(self, latent: torch.Tensor, level: tuple[float, float]) -> torch.Tensor:
        """Put the known region (mask 0) back at ``level``; unchanged without a mask."""
        if self.mask is None:
            return latent
        return self.mask * latent + (1.0 - self.mask) * self.noised(level)

    def keep_known_x0(self, x0_pred: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return x0_pred
        return self.mask * x0_pred + (1.0 - self.mask) * self.latent

    def finish(self, decoded: np.ndarray) -> np.ndarray:
        """The final image: composited with the init pixels where there is a mask."""
        if self.mask_pixels is None:
            return decoded
        return composite(decoded, self.image, self.mask_pixels)


@torch.no_grad()
def inpainting_input(
    model: object, recipe: Recipe, init: InitLatents | None, shape: tuple[int, ...]
) -> torch.Tensor | None:
    """What a true inpainting UNet takes beside the latent, as diffusers'
    ``StableDiffusionInpaintPipeline`` prepares it (``prepare_mask_latents``): the mask
    (binarized at 0.5, 1 = repaint) at latent size, nearest, then the latent of the init
    image with the repainted pixels set to 0 (mid grey), as a (1, 1 + C, h, w) tensor.
    Without a mask (text-to-image, or image-to-image without one) the mask is all ones and
    the image all zeros: the model repaints everything. None for an ordinary UNet."""
    if not getattr(model, "is_inpainting", False):
        return None
    device = model.device  # type: ignore[attr-defined]
    height, width = recipe.height, recipe.width
    if init is None or init.mask_pixels is None:
        mask = torch.ones((1, 1, height, width))
        masked = torch.zeros((1, 3, height, width))
    else:
        mask = (torch.from_numpy(init.mask_pixels).float()[None, None] / 255.0 >= 0.5).float()
        masked = _normalized(init.image) * (mask < 0.5)
    small = torch.nn.functional.interpolate(mask, size=tuple(shape[-2:]))
    latent = encode_normalized(model, masked).to(device)
    return torch.cat([small.to(device), latent], dim=1)


def init_latents(
    model: object,
    recipe: Recipe,
    images: Sequence[np.ndarray],
    noise: torch.Tensor,
) -> InitLatents | None:
    """The recipe's init latents, or None for a text-to-image recipe."""
    if not recipe.init_image:
        return None
    image = find_image(images, recipe.init_image, "init image")
    mask = find_image(images, recipe.mask, "mask") if recipe.mask else None
    check_images(recipe, image, mask)
    device = model.device  # type: ignore[attr-defined]
    latent = encode_image(model, image).to(device)
    if tuple(latent.shape) != tuple(noise.shape):
        raise RecipeError("The init image's latent does not fit this model.")
    return InitLatents(
        image=image,
        mask_pixels=mask,
        latent=latent,
        noise=noise.to(device),
        # A true inpainting UNet sees the mask itself (``inpainting_input``): no blending
        # of the known region into the latent, as in diffusers; the final composite is
        # still exact outside the mask.
        mask=None
        if mask is None or getattr(model, "is_inpainting", False)
        else latent_mask(mask, latent.shape).to(device),
    )
