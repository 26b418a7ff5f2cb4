"""Fitting a model into the memory there is: the check before loading and the savers.

- Before any weight is read, the model's size at the target dtype (from the
  safetensors headers) is checked against free RAM and, on a GPU, free VRAM,
  and a model that cannot fit is refused in one sentence. On Linux a process
  that runs out of RAM is killed by the kernel, so this check is the only
  chance to say anything.
- Three savers, each "auto", "on" or "off" (``MemorySaving``; the CLI's
  ``--memory-saving`` or $NOISE_STUDIO_MEMORY_SAVING, e.g.
  ``vae_tiling=on,cpu_offload=off``):

  - ``vae_tiling``: decode in overlapping tiles (diffusers' ``enable_tiling``;
    it only tiles latents larger than the VAE's own sample size). Auto: for a
    decode whose full-size activations would not fit in free memory.
  - ``attention_slicing``: attention computed a slice of heads at a time
    (diffusers' ``set_attention_slice("auto")``). PyTorch's scaled-dot-product
    kernels, diffusers' default processor, already avoid the full attention
    matrix on CUDA, so auto turns slicing on only on Apple MPS, as diffusers
    advises.
  - ``cpu_offload``: the parts stay in RAM and each moves to the GPU just
    before it runs, one at a time (what diffusers' ``enable_model_cpu_offload``
    does, without accelerate). Auto: on a GPU whose free memory is below the
    weights but above the largest part.

Slicing and offload are fixed at load time, so a run and its resume use the
same kernels; tiling changes only the final decode, never the latents.

The window's Generate ▸ Memory saving… stores a choice per saver and sends it with
each model load (``LoadModel.memory_saving``); $NOISE_STUDIO_MEMORY_SAVING, where the
worker runs, overrides the savers it names (:meth:`MemorySaving.with_environment`).
The savers and their parsing load no torch, so the window may use them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.engine.errors import ModelError

if TYPE_CHECKING:
    import torch

SETTINGS_ENV = "NOISE_STUDIO_MEMORY_SAVING"
CHOICES = ("auto", "on", "off")
DECODE_BYTES_PER_PIXEL_AND_CHANNEL = 4
"""The VAE decoder holds about this many full-resolution tensors of its widest channel count."""


@dataclass(frozen=True)
class MemorySaving:
    """Which memory savers a model runs with: "auto", "on" or "off" each (module docstring)."""

    vae_tiling: str = "auto"
    attention_slicing: str = "auto"
    cpu_offload: str = "auto"

    @classmethod
    def parse(cls, text: str | None) -> MemorySaving:
        """``"vae_tiling=on,cpu_offload=off"`` (unnamed savers stay auto); "" is all auto."""
        names = {f.name: f.name for f in fields(cls)}
        names.update({name.replace("_", "-"): name for name in list(names)})
        changes: dict[str, str] = {}
        for item in (text or "").split(","):
            if not item.strip():
                continue
            key, _, value = item.partition("=")
            key, value = key.strip().lower(), value.strip().lower()
            if key not in names or value not in CHOICES:
                raise ModelError(
                    f"Unknown memory saving {item.strip()!r}; use vae_tiling, attention_slicing or "
                    "cpu_offload, each =auto, =on or =off."
                )
            changes[names[key]] = value
        return replace(cls(), **changes)

    @classmethod
    def from_environment(cls) -> MemorySaving:
        return cls.parse(os.environ.get(SETTINGS_ENV))

    @classmethod
    def with_environment(cls, text: str | None) -> MemorySaving:
        """``text`` (the window's choice), with each saver $NOISE_STUDIO_MEMORY_SAVING
        names taking the environment's value instead."""
        return cls.parse(f"{text or ''},{os.environ.get(SETTINGS_ENV) or ''}")

    def text(self) -> str:
        """The savers not on auto, in :meth:`parse`'s format ("" when all are)."""
        return ",".join(
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != "auto"
        )


def weights_bytes(headers: list[dict[str, dict[str, Any]]], dtype: torch.dtype) -> int:
    """Bytes of the floating-point tensors in safetensors ``headers`` once cast to ``dtype``
    (other tensors at their own size)."""
    import torch

    itemsize = torch.empty((), dtype=dtype).element_size()
    total = 0
    for header in headers:
        for entry in header.values():
            count = 1
            for side in entry.get("shape", ()):
                count *= int(side)
            floating = str(entry.get("dtype", "")).startswith(("F", "BF"))
            total += count * (itemsize if floating else _stored_size(entry))
    return total


def check_fits(
    name: str,
    needed: int,
    device: torch.device,
    largest_part: int = 0,
    offload: str = "auto",
    through_ram: bool = True,
) -> bool:
    """Raise ModelError in one sentence unless ``needed`` bytes of weights fit.

    RAM holds the weights once when they run on the CPU, are loaded there first
    (``through_ram``: a folder) or stay there (CPU offload); on CUDA, VRAM must hold
    them too, or their ``largest_part`` with CPU offload. Returns whether CPU
    offload is needed (auto) or asked for (on)."""
    import torch

    from studio.engine.memory import available_bytes

    ram = available_bytes(torch.device("cpu"))
    in_ram = device.type != "cuda" or through_ram or offload == "on"
    if in_ram and 0 < ram < needed:
        raise ModelError(_too_big(name, needed, ram, "this machine has"))
    if device.type != "cuda":
        return False
    vram = available_bytes(device)
    if offload == "on":
        return True
    if vram <= 0 or needed <= vram:
        return False
    if offload == "auto" and 0 < largest_part <= vram:
        return True
    raise ModelError(_too_big(name, needed, vram, "the GPU has"))


def apply_savers(model: Any, saving: MemorySaving, offload: bool) -> None:
    """Set attention slicing and CPU offload on a loaded model (``LoadedModel``)."""
    if saving.attention_slicing == "on" or (
        saving.attention_slicing == "auto" and model.device.type == "mps"
    ):
        model.unet.set_attention_slice("auto")
    if offload:
        model.offload = PartOffload(
            [p for p in (model.text_encoder, model.text_encoder_2, model.unet) if p is not None]
            + [model.vae],
            model.device,
        )


def decode_bytes(vae: Any, height: int, width: int) -> int:
    """About what a one-piece decode of a ``height``×``width`` image holds at once."""
    widest = max(vae.config.block_out_channels)
    itemsize = next(vae.parameters()).element_size()
    return DECODE_BYTES_PER_PIXEL_AND_CHANNEL * widest * itemsize * height * width


@contextlib.contextmanager
def tiling_when_short(model: Any, latent: torch.Tensor) -> Iterator[bool]:
    """Decode in tiles inside this block when ``vae_tiling`` is on, or auto and a
    one-piece decode of ``latent`` would not fit in free memory; yields whether it tiles."""
    from studio.engine.memory import available_bytes

    saving = getattr(model, "memory_saving", None) or MemorySaving()
    vae = model.vae
    if saving.vae_tiling == "off" or not hasattr(vae, "enable_tiling"):
        yield False
        return
    tile = saving.vae_tiling == "on"
    if saving.vae_tiling == "auto":
        factor = model.size_factor
        need = decode_bytes(vae, latent.shape[-2] * factor, latent.shape[-1] * factor)
        free = available_bytes(next(vae.parameters()).device)
        tile = 0 < free < need
    if not tile:
        yield False
        return
    was = bool(getattr(vae, "use_tiling", False))
    vae.enable_tiling()
    try:
        yield True
    finally:
        if not was:
            vae.disable_tiling()


class PartOffload:
    """Keeps the model's parts in RAM and moves each one to ``device`` just before it
    runs (forward pre-hooks; the VAE's on its decoder), sending the one there before
    back: only the largest part ever needs to fit on the device."""

    def __init__(self, parts: list[Any], device: torch.device) -> None:
        self.device = device
        self.parts = parts
        self.resident: Any = None
        self.handles = []
        for part in parts:
            part.to("cpu")
            # A VAE decodes through post_quant_conv and its decoder, never its forward.
            entries = (part, getattr(part, "post_quant_conv", None), getattr(part, "decoder", None))
            for target in entries:
                if target is not None:
                    self.handles.append(
                        target.register_forward_pre_hook(
                            lambda _module, _args, part=part: self.bring(part)
                        )
                    )

    def bring(self, part: Any) -> None:
        if self.resident is part:
            return
        if self.resident is not None:
            self.resident.to("cpu")
        part.to(self.device)
        self.resident = part

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _stored_size(entry: dict[str, Any]) -> int:
    offsets = entry.get("data_offsets") or (0, 0)
    return int(offsets[1]) - int(offsets[0])


def _too_big(name: str, needed: int, free: int, where: str) -> str:
    return (
        f"{name} needs about {_gigabytes(needed)} of memory to load and {where} "
        f"{_gigabytes(free)} free; close other programs, or choose a smaller model "
        "or a lower precision (--device …:fp16)."
    )


def _gigabytes(count: int) -> str:
    return f"{count / 2**30:.1f} GB"


def header_paths(path: Path) -> list[Path]:
    """The weight files whose headers give a model's size: the file itself, or a folder's parts."""
    if path.is_file():
        return [path]
    from studio.engine.model_files import weight_files

    files: list[Path] = []
    for part, stem in (
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
        ("text_encoder_2", "model"),
    ):
        if (path / part).is_dir():
            files += weight_files(path / part, stem)
    return files
