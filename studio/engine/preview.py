"""Latent → RGB: the fast preview every step, and the full VAE decode.

The fast preview is, where the model has one, a tiny TAESD-style decoder (a
diffusers ``AutoencoderTiny`` folder) that gives an image at full resolution for a
few percent of a denoising step; otherwise it is a per-model 4×3 matrix plus bias
applied to each latent pixel, at latent resolution. The full decode runs the VAE;
a NaN there (fp16 VAEs do this) is redone in fp32, and an image that is still
non-finite or entirely black is refused rather than shown.

A preview decoder is found in the model's folder (``preview_decoder/``, the bundled
model ships one trained by ``studio.training.preview_decoder``) or, for user models,
in a ``taesd``/``taesdxl`` folder beside the model, in a given folder or one named in
``$NOISE_STUDIO_PREVIEW_DECODERS`` (folders separated by the path separator), or as
``madebyollin/taesd``/``taesdxl`` in the local Hugging Face cache. It is read without running anything from it: the config is checked key by key against
bounds and passed to the class by hand, and the weights are read only from a
header-checked safetensors file. A decoder that fails the checks is skipped with a
warning and the linear map is used, so a bad side file never stops a model loading.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio.engine.errors import DecodeError, ModelError

log = logging.getLogger(__name__)

PREVIEW_DECODER_FOLDER = "preview_decoder"
# The folder names TAESD is usually kept under, per family (madebyollin/taesd, taesdxl).
TAESD_FOLDERS = {"sd1": ("taesd",), "sd2": ("taesd",), "sdxl": ("taesdxl",)}
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
PREVIEW_DECODERS_ENV = "NOISE_STUDIO_PREVIEW_DECODERS"
MAX_CONFIG_BYTES = 64 * 1024
MAX_WEIGHTS_BYTES = 64 * 1024 * 1024
_ACTIVATIONS = frozenset({"relu", "silu"})
_UPSAMPLE_MODES = frozenset({"nearest", "bilinear"})


@dataclass(frozen=True, eq=False)
class PreviewDecoder:
    """A checked ``AutoencoderTiny`` whose decoder turns a latent into a full-size preview.

    Threading: used by the thread that owns torch, like the rest of the model.
    """

    model: Any
    folder: Path
    # The decoder's forward with its full-resolution tail folded into a sub-pixel conv
    # (``fast_decoder_forward``), or None to run the module as it is.
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __call__(self, latent: torch.Tensor) -> np.ndarray:
        return tiny_preview(self, latent)

    def describe(self) -> str:
        name = self.folder.name
        if self.folder.parent.name == "snapshots":  # a Hugging Face cache snapshot
            name = self.folder.parent.parent.name.removeprefix("models--").replace("--", "/")
        return f"tiny decoder ({name})"


def tiny_preview(decoder: PreviewDecoder, latent: torch.Tensor) -> np.ndarray:
    """uint8 H×W×3 at image resolution from a (1, C, h, w) latent in the UNet's space."""
    return tiny_previews(decoder, latent)[0]


def tiny_previews(decoder: PreviewDecoder, latents: torch.Tensor) -> list[np.ndarray]:
    """uint8 H×W×3 images at image resolution from an (N, C, h, w) batch of latents.

    Each image equals a lone :func:`tiny_preview` up to float rounding (a pixel's value
    may differ by 1 where the batch's sums land on the other side of .5)."""
    config = decoder.model.config
    scaled = latents.detach().float() / config.scaling_factor + config.shift_factor
    forward = decoder.forward or decoder.model.decoder
    with torch.inference_mode():
        images = forward(scaled.to(decoder.model.device))
    pixels = ((images.permute(0, 2, 3, 1) + 1.0) * 127.5).clamp(0, 255).round()
    batch = torch.nan_to_num(pixels).to(torch.uint8).cpu().numpy()
    return list(batch)


def preview_image(model: Any, latent: torch.Tensor) -> np.ndarray:
    """The fast preview of ``latent`` for a LoadedModel: its tiny decoder, else its linear map."""
    decoder = getattr(model, "preview_decoder", None)
    if decoder is not None:
        return tiny_preview(decoder, latent)
    return linear_preview(latent, model.preview_factors, model.preview_bias)


@torch.no_grad()
def fit_linear_map(
    vae: Any, channels: int, side: int = 8, samples: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A least-squares latent→RGB map for a VAE that ships none, fitted on its own decodes.

    Random unit-variance latents (the UNet's space) are decoded, the images are
    averaged down to latent resolution, and the 4×3 matrix plus bias that best maps
    latent pixels to those colours is solved for, as ``preview.json`` is fitted for
    the bundled model. Cheap: a few decodes of 8×8 latents.
    """
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(samples, channels, side, side, generator=generator)
    config = vae.config
    scaled = latents / config.scaling_factor + (getattr(config, "shift_factor", None) or 0.0)
    images = vae.decode(scaled.to(vae.device, vae.dtype)).sample.float().cpu().clamp(-1, 1)
    small = torch.nn.functional.adaptive_avg_pool2d(images, (side, side))
    x = latents.permute(0, 2, 3, 1).reshape(-1, channels).double()
    y = small.permute(0, 2, 3, 1).reshape(-1, 3).double()
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    solution = torch.linalg.lstsq(x1, y).solution.float()
    if not bool(torch.isfinite(solution).all()):
        raise ModelError("The model's VAE gives no usable colours for a preview map.")
    return solution[:-1].contiguous(), solution[-1].contiguous()


def describe_preview(model: Any) -> str:
    """Which preview a model uses, in words for the model picker."""
    decoder = getattr(model, "preview_decoder", None)
    return decoder.describe() if decoder is not None else "linear map"


def preview_decoder_candidates(
    model_path: Path, family: str, extra_dirs: Iterable[Path] = ()
) -> list[Path]:
    """Folders that may hold a preview decoder for the model at ``model_path``, best first."""
    names = TAESD_FOLDERS.get(family, ())
    if model_path.is_dir():
        found = [model_path / PREVIEW_DECODER_FOLDER, *(model_path.parent / n for n in names)]
    else:
        found = [model_path.parent / n for n in names]
    configured = [d for d in os.environ.get(PREVIEW_DECODERS_ENV, "").split(os.pathsep) if d]
    found += [Path(d).expanduser() / n for d in (*extra_dirs, *configured) for n in names]
    return found + [s for n in names if (s := _hf_cache_snapshot(f"madebyollin/{n}")) is not None]


def _hf_cache_snapshot(repo: str) -> Path | None:
    """A repo's snapshot in the local Hugging Face cache, if it is there (nothing is downloaded)."""
    from studio.engine.models import _hf_cache_snapshot as snapshot

    try:
        return snapshot(repo)
    except (ModelError, OSError):
        return None


def find_preview_decoder(
    model_path: Path,
    family: str,
    latent_channels: int,
    size_factor: int,
    device: torch.device | str = "cpu",
    extra_dirs: Iterable[Path] = (),
) -> PreviewDecoder | None:
    """The first candidate folder that holds a sound decoder, or None (with a warning per refusal)."""
    for folder in preview_decoder_candidates(model_path, family, extra_dirs):
        if not (folder / "config.json").is_file():
            continue
        try:
            return load_preview_decoder(folder, latent_channels, size_factor, device)
        except ModelError as exc:
            log.warning("Preview decoder skipped, using the linear map: %s", exc)
    return None


def load_preview_decoder(
    folder: Path,
    latent_channels: int,
    size_factor: int,
    device: torch.device | str = "cpu",
) -> PreviewDecoder:
    """Load an ``AutoencoderTiny`` folder (config.json + safetensors); raise ModelError if unsound."""
    from diffusers import AutoencoderTiny
    from safetensors.torch import load_file

    from studio.engine import model_files

    folder = Path(folder)
    try:
        config = model_files.read_json_object(folder / "config.json", MAX_CONFIG_BYTES)
    except ModelError as exc:
        raise ModelError(f"The preview decoder in {folder} has no usable config: {exc}") from None
    kwargs = _checked_config(config, folder, latent_channels, size_factor)
    weights = folder / WEIGHTS_NAME
    try:
        if not weights.is_file():
            raise ModelError(f"The preview decoder in {folder} has no {WEIGHTS_NAME}.")
        if weights.stat().st_size > MAX_WEIGHTS_BYTES:
            raise ModelError(f"The preview decoder in {folder} is too large to be a tiny decoder.")
        model_files.check_safetensors(weights)
        state = load_file(weights)
        model = AutoencoderTiny(**kwargs)
        model.load_state_dict(state, strict=True)
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"The preview decoder in {folder} could not be loaded: {first}") from None
    if not all(bool(torch.isfinite(p).all()) for p in model.decoder.parameters()):
        raise ModelError(f"The preview decoder in {folder} has non-finite weights.")
    model = model.to(device=device, dtype=torch.float32).eval().requires_grad_(False)
    return PreviewDecoder(model=model, folder=folder, forward=fast_decoder_forward(model.decoder))


def fast_decoder_forward(decoder: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The same function as ``decoder`` (a diffusers ``DecoderTiny``), with less work at full size.

    A TAESD-style decoder ends in nearest 2× upsampling, a 3×3 conv without bias and a
    3×3 conv to RGB, with no activation between: most of its cost, spent at full
    resolution. That tail is linear, so it is folded here into one 3×3 conv at half
    resolution giving the four sub-pixel phases of each RGB pixel (pixel shuffle). The
    only difference from the module is at the one-pixel border, where the last conv
    zero-pads its input; that is subtracted exactly from thin strips. Returns None for a
    decoder that does not end this way (it then runs as it is).
    """
    from torch import nn
    from torch.nn import functional as F

    layers = list(getattr(decoder, "layers", ()))
    if len(layers) < 4:
        return None
    up, conv_a, conv_b = layers[-3:]
    if not (
        isinstance(up, nn.Upsample)
        and up.mode == "nearest"
        and up.scale_factor in (2, 2.0)
        and isinstance(conv_a, nn.Conv2d)
        and isinstance(conv_b, nn.Conv2d)
        and conv_a.bias is None
        and conv_a.out_channels == conv_b.in_channels
        and all(
            c.kernel_size == (3, 3)
            and c.padding == (1, 1)
            and c.stride == (1, 1)
            and c.dilation == (1, 1)
            and c.groups == 1
            and c.padding_mode == "zeros"
            for c in (conv_a, conv_b)
        )
    ):
        return None
    head = _functional_head(layers[:-3])
    if head is None:
        return None
    with torch.no_grad():
        wa, wb = conv_a.weight.double().cpu(), conv_b.weight.double().cpu()
        out, cin = wb.shape[0], wa.shape[1]
        # conv_b ∘ conv_a as one 5×5 kernel on the upsampled features ...
        kernel = torch.zeros(out, cin, 5, 5, dtype=torch.float64)
        for p in range(3):
            for p2 in range(3):
                for q in range(3):
                    for q2 in range(3):
                        kernel[:, :, p + q, p2 + q2] += wb[:, :, p, p2] @ wa[:, :, q, q2]
        # ... read at half resolution: sub-pixel phase (a, b) of each output pixel.
        phases = torch.zeros(out, 2, 2, cin, 3, 3, dtype=torch.float64)
        for a in range(2):
            for u in range(5):
                for b in range(2):
                    for v in range(5):
                        phases[:, a, b, :, (a + u) // 2, (b + v) // 2] += kernel[:, :, u, v]
        device = conv_a.weight.device
        phases = phases.reshape(out * 4, cin, 3, 3).float().to(device)
        bias = conv_b.bias if conv_b.bias is not None else torch.zeros(out, device=device)
        bias4 = bias.detach().float().repeat_interleave(4)
        # Border terms: conv_a's outputs just outside the image (rows -1 and H, columns -1
        # and W) through conv_b, as 1×5 / 5×1 kernels on the upsampled first and last
        # rows and columns; the four corner terms are in both and are added back once.
        sides = torch.zeros(4, out, cin, 5, dtype=torch.float64)
        for d in range(3):
            for q in range(3):
                sides[0, :, :, d + q] += wb[:, :, 0, d] @ wa[:, :, 2, q]  # top
                sides[1, :, :, d + q] += wb[:, :, 2, d] @ wa[:, :, 0, q]  # bottom
                sides[2, :, :, d + q] += wb[:, :, d, 0] @ wa[:, :, q, 2]  # left
                sides[3, :, :, d + q] += wb[:, :, d, 2] @ wa[:, :, q, 0]  # right
        k_rows = sides[:2].reshape(2 * out, cin, 1, 5).float().to(device)
        k_cols = sides[2:].reshape(2 * out, cin, 5, 1).float().to(device)
        corners = torch.stack(
            [wb[:, :, i, j] @ wa[:, :, 2 - i, 2 - j] for i, j in ((0, 0), (0, 2), (2, 0), (2, 2))]
        )
        corners = corners.float().to(device)

    def forward(x: torch.Tensor) -> torch.Tensor:
        low = head(torch.tanh(x / 3) * 3)
        image = F.pixel_shuffle(F.conv2d(low, phases, bias4, padding=1), 2)
        # The folded kernel sees conv_a's values just outside the image, where conv_b
        # sees zeros; their contribution is taken off the border pixels.
        rows = F.conv2d(F.pad(low[:, :, (0, -1)].repeat_interleave(2, dim=3), (2, 2)), k_rows)
        image[:, :, 0] -= rows[:, :out, 0]
        image[:, :, -1] -= rows[:, out:, 1]
        cols = F.conv2d(F.pad(low[..., (0, -1)].repeat_interleave(2, dim=2), (0, 0, 2, 2)), k_cols)
        image[..., 0] -= cols[:, :out, :, 0]
        image[..., -1] -= cols[:, out:, :, 1]
        ends = (0, 0, -1, -1), (0, -1, 0, -1)
        image[:, :, ends[0], ends[1]] += torch.einsum(
            "kom,nmk->nok", corners, low[:, :, ends[0], ends[1]]
        )
        return image.mul(2).sub(1)

    return forward


def _functional_head(layers: list[Any]) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``nn.Sequential(*layers)`` as plain functional calls (a tiny decoder's modules cost
    more to call than to run), or None for a layer this does not know."""
    from diffusers.models.autoencoders.vae import AutoencoderTinyBlock
    from torch import nn
    from torch.nn import functional as F

    def conv(m: Any) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int]] | None:
        plain = (
            isinstance(m, nn.Conv2d)
            and m.stride == (1, 1)
            and m.dilation == (1, 1)
            and m.groups == 1
            and m.padding_mode == "zeros"
            and isinstance(m.padding, tuple)
        )
        return (m.weight, m.bias, m.padding) if plain else None

    steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
    for layer in layers:
        if isinstance(layer, nn.Conv2d) and (c := conv(layer)) is not None:
            steps.append(lambda x, c=c: F.conv2d(x, c[0], c[1], padding=c[2]))
        elif isinstance(layer, nn.ReLU):
            steps.append(torch.relu)
        elif isinstance(layer, nn.Upsample) and layer.mode == "nearest" and layer.size is None:
            steps.append(lambda x, f=layer.scale_factor: F.interpolate(x, scale_factor=f))
        elif isinstance(layer, AutoencoderTinyBlock):
            body = list(layer.conv)
            convs = [conv(m) for m in body[::2]]
            relu = all(isinstance(m, nn.ReLU) for m in (*body[1::2], layer.fuse))
            if not (len(body) == 5 and relu and all(convs) and isinstance(layer.skip, nn.Identity)):
                return None

            def block(x: torch.Tensor, convs: list[Any] = convs) -> torch.Tensor:
                (w0, b0, p0), (w1, b1, p1), (w2, b2, p2) = convs
                h = F.conv2d(x, w0, b0, padding=p0).relu_()
                h = F.conv2d(h, w1, b1, padding=p1).relu_()
                return F.conv2d(h, w2, b2, padding=p2).add_(x).relu_()

            steps.append(block)
        else:
            return None

    def run(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return run


def _checked_config(
    config: dict[str, Any], folder: Path, latent_channels: int, size_factor: int
) -> dict[str, Any]:
    """The constructor arguments, each checked against bounds; unknown keys are not passed on."""

    def bad(detail: str) -> ModelError:
        return ModelError(f"The preview decoder in {folder} has an unusable config: {detail}.")

    def count(key: str, default: int, low: int, high: int) -> int:
        value = config.get(key, default)
        if type(value) is not int or not low <= value <= high:
            raise bad(f"{key} must be a whole number from {low} to {high}")
        return value

    def counts(key: str, low: int, high: int) -> tuple[int, ...]:
        value = config.get(key)
        ok = isinstance(value, list) and 2 <= len(value) <= 6
        if not ok or any(type(v) is not int or not low <= v <= high for v in value):
            raise bad(f"{key} must list 2 to 6 whole numbers from {low} to {high}")
        return tuple(value)

    def number(key: str, default: float, low: float, high: float) -> float:
        value = config.get(key, default)
        if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
            raise bad(f"{key} must be a number from {low} to {high}")
        return float(value)

    def choice(key: str, default: str, allowed: frozenset[str]) -> str:
        value = config.get(key, default)
        if value not in allowed:
            raise bad(f"{key} must be one of {', '.join(sorted(allowed))}")
        return value

    if config.get("_class_name") != "AutoencoderTiny":
        raise bad("it is not an AutoencoderTiny")
    kwargs: dict[str, Any] = {
        "in_channels": count("in_channels", 3, 3, 3),
        "out_channels": count("out_channels", 3, 3, 3),
        "latent_channels": count("latent_channels", 4, 1, 64),
        "encoder_block_out_channels": counts("encoder_block_out_channels", 1, 512),
        "decoder_block_out_channels": counts("decoder_block_out_channels", 1, 512),
        "num_encoder_blocks": counts("num_encoder_blocks", 0, 8),
        "num_decoder_blocks": counts("num_decoder_blocks", 0, 8),
        "upsampling_scaling_factor": count("upsampling_scaling_factor", 2, 1, 4),
        "act_fn": choice("act_fn", "relu", _ACTIVATIONS),
        "upsample_fn": choice("upsample_fn", "nearest", _UPSAMPLE_MODES),
        "latent_magnitude": number("latent_magnitude", 3, 0.0, 100.0),
        "latent_shift": number("latent_shift", 0.5, -100.0, 100.0),
        "scaling_factor": number("scaling_factor", 1.0, 1e-3, 100.0),
        "shift_factor": number("shift_factor", 0.0, -100.0, 100.0),
    }
    force_upcast = config.get("force_upcast", False)
    if type(force_upcast) is not bool:
        raise bad("force_upcast must be true or false")
    kwargs["force_upcast"] = force_upcast
    decoder_stages = kwargs["decoder_block_out_channels"]
    if len(kwargs["num_decoder_blocks"]) != len(decoder_stages) or len(set(decoder_stages)) != 1:
        raise bad("the decoder's stages must match its block counts and share one width")
    if len(kwargs["num_encoder_blocks"]) != len(kwargs["encoder_block_out_channels"]):
        raise bad("the encoder's stages must match its block counts")
    if kwargs["latent_channels"] != latent_channels:
        raise bad(
            f"it reads {kwargs['latent_channels']} latent channels, the model has {latent_channels}"
        )
    if kwargs["upsampling_scaling_factor"] ** (len(decoder_stages) - 1) != size_factor:
        raise bad(f"it does not upsample by the model's factor of {size_factor}")
    return kwargs


def linear_preview(latent: torch.Tensor, factors: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """uint8 H×W×3 at latent resolution from a (1, C, H, W) latent."""
    pixels = torch.einsum("chw,cr->hwr", latent[0].float(), factors.to(latent.device)) + bias.to(
        latent.device
    )
    pixels = ((pixels + 1.0) * 127.5).clamp(0, 255)
    return torch.nan_to_num(pixels).to(torch.uint8).cpu().numpy()


def decode(vae: Any, latent: torch.Tensor) -> np.ndarray:
    """Full VAE decode of a (1, C, H, W) latent to uint8 H×W×3."""
    image = _decode_redone_in_fp32_on_nan(vae, latent)
    if not torch.isfinite(image).all():
        raise DecodeError("The decoded image contains NaN values; it was not kept.")
    pixels = (
        ((image[0].float().permute(1, 2, 0) + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)
    )
    array = pixels.cpu().numpy()
    if not array.any():
        raise DecodeError("The decoded image is entirely black; it was not kept.")
    return array


def decode_batch(vae: Any, latents: torch.Tensor) -> list[np.ndarray | None]:
    """Full VAE decodes of an (N, C, H, W) batch, as :func:`decode` gives each: uint8 H×W×3,
    or None for an image that is non-finite or entirely black (a NaN anywhere redoes the
    batch in fp32 first). Equal to lone decodes up to float rounding (see the README)."""
    images = _decode_redone_in_fp32_on_nan(vae, latents)
    finite = torch.isfinite(images.flatten(1)).all(dim=1).tolist()
    pixels = ((images.float().permute(0, 2, 3, 1) + 1.0) * 127.5).clamp(0, 255)
    arrays = torch.nan_to_num(pixels).round().to(torch.uint8).cpu().numpy()
    return [a if ok and a.any() else None for a, ok in zip(arrays, finite, strict=True)]


def _decode_redone_in_fp32_on_nan(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """The VAE's decode of ``latents``; a non-finite value from a half-precision VAE
    (an fp16 SD VAE overflows) redoes it in fp32."""
    images = _decode_once(vae, latents)
    if not torch.isfinite(images).all() and vae.dtype != torch.float32:
        original = vae.dtype
        vae.to(torch.float32)
        try:
            images = _decode_once(vae, latents.float())
        finally:
            vae.to(original)
    return images


@torch.no_grad()
def _decode_once(vae: Any, latent: torch.Tensor) -> torch.Tensor:
    config = vae.config
    scaled = latent.to(vae.device, vae.dtype) / config.scaling_factor
    shift = getattr(config, "shift_factor", None)
    if shift:
        scaled = scaled + shift
    return vae.decode(scaled).sample
