"""Builders for hostile and broken model inputs, each made on the spot by a test.

``tiny_sd_folder`` writes a valid, tiny SD-shaped diffusers folder (random
weights, fixed seed, safetensors only) that tests then damage in one way.
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


def _byte_characters() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 byte values."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def _clip_vocab_files(folder: Path) -> int:
    """Byte-level BPE vocabulary without merges: enough for CLIPTokenizer to run."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_characters()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return len(vocab)


def tiny_sd_folder(root: Path, *, text_width: int = 32, unet_in: int = 4) -> Path:
    """Write a tiny SD1-shaped diffusers folder to ``root`` and return it."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    vocab_size = _clip_vocab_files(root / "tokenizer")
    tokenizer = CLIPTokenizer(
        str(root / "tokenizer" / "vocab.json"), str(root / "tokenizer" / "merges.txt")
    )
    tokenizer.model_max_length = 77
    tokenizer.save_pretrained(root / "tokenizer")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=text_width,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        )
    )
    text_encoder.save_pretrained(root / "text_encoder", safe_serialization=True)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=unet_in,
        out_channels=4,
        block_out_channels=(32, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=text_width,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    unet.save_pretrained(root / "unet", safe_serialization=True)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    vae.save_pretrained(root / "vae", safe_serialization=True)
    DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False
    ).save_pretrained(root / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (root / "model_index.json").write_text(json.dumps(index, indent=2))
    return root
