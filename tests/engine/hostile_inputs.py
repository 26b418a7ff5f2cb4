"""Builders for hostile and broken model inputs, each made on the spot by a test.

Tests copy the tiny valid folder from ``tests/tiny_models.py`` and damage it
in one way; the ``rebuild_*`` functions swap a component for one of another
shape (random weights, fixed seed, safetensors only).
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path


class MarkerPayload:
    """Unpickling this creates ``marker``: proof that pickled code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def evil_pickle(marker: Path, protocol: int = 2) -> bytes:
    return pickle.dumps({"state_dict": MarkerPayload(marker)}, protocol=protocol)


def torch_style_zip(payload: bytes, member: str = "archive/data.pkl") -> bytes:
    """A zip laid out like torch.save's format, with the pickle at ``member``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, payload)
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/data/0", b"\x00" * 16)
    return buffer.getvalue()


def safetensors_bytes(header: dict | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    """Raw safetensors bytes from a header (dict or literal JSON bytes) and a data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def rebuild_text_encoder(folder: Path, component: str = "text_encoder", **changes: object) -> Path:
    """Replace a component's CLIP text encoder with random weights for a changed config."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    config = json.loads((folder / component / "config.json").read_text())
    keep = {
        k: v
        for k, v in config.items()
        if k not in ("architectures", "transformers_version", "dtype")
    }
    torch.manual_seed(0)
    model = CLIPTextModel(CLIPTextConfig(**{**keep, **changes}))
    model.save_pretrained(folder / component, safe_serialization=True)
    return folder / component


def rebuild_unet(folder: Path, **changes: object) -> Path:
    """Replace the UNet with random weights for a changed config (e.g. in_channels=9)."""
    import torch
    from diffusers import UNet2DConditionModel

    config = json.loads((folder / "unet" / "config.json").read_text())
    torch.manual_seed(0)
    UNet2DConditionModel.from_config({**config, **changes}).save_pretrained(
        folder / "unet", safe_serialization=True
    )
    return folder / "unet"
