"""Tiny random diffusers pipelines built in code, seeded, for fast offline tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def write_char_tokenizer(folder: Path, max_length: int = 77) -> None:
    """A CLIP tokenizer whose vocabulary is single characters (no merges)."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "model_max_length": max_length,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "tokenizer_class": "CLIPTokenizer",
            }
        )
    )


def build_tiny_pipeline(folder: Path, xl: bool = False, seed: int = 0) -> Path:
    """Write a tiny SD-shaped (or SDXL-shaped) diffusers folder with random weights."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(folder)
    torch.manual_seed(seed)
    vocab_size = 2 * 256 + 2
    text_config = CLIPTextConfig(
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        max_position_embeddings=77,
        projection_dim=16,
    )
    CLIPTextModel(text_config).save_pretrained(folder / "text_encoder", safe_serialization=True)
    write_char_tokenizer(folder / "tokenizer")
    cross = 16
    unet_extra: dict = {}
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
    }
    if xl:
        CLIPTextModelWithProjection(text_config).save_pretrained(
            folder / "text_encoder_2", safe_serialization=True
        )
        write_char_tokenizer(folder / "tokenizer_2")
        cross = 32
        unet_extra = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 4,
            "projection_class_embeddings_input_dim": 6 * 4 + 16,
        }
        index.update(
            {
                "_class_name": "StableDiffusionXLPipeline",
                "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
                "tokenizer_2": ["transformers", "CLIPTokenizer"],
                "force_zeros_for_empty_prompt": True,
            }
        )
        for key in ("safety_checker", "feature_extractor", "requires_safety_checker"):
            index.pop(key)
    UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross,
        attention_head_dim=2,
        norm_num_groups=4,
        **unet_extra,
    ).save_pretrained(folder / "unet", safe_serialization=True)
    AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    ).save_pretrained(folder / "vae", safe_serialization=True)
    EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    ).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def build_tiny_preview_decoder(folder: Path, stages: int = 2, **overrides) -> Path:
    """A random AutoencoderTiny saved in diffusers layout (upsampling 2 ** (stages - 1)),
    with ``overrides`` written over its config.json."""
    import json

    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(
        encoder_block_out_channels=(4,) * stages,
        decoder_block_out_channels=(8,) * stages,
        num_encoder_blocks=(0,) * stages,
        num_decoder_blocks=(1,) + (0,) * (stages - 1),
    ).save_pretrained(folder, safe_serialization=True)
    if overrides:
        config = json.loads((folder / "config.json").read_text())
        config.update(overrides)
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def build_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A tiny random CLIPModel (text and vision, projection 16, images 32 px) in the
    transformers layout, with the character tokenizer: stands in for a user's CLIP folder."""
    from transformers import CLIPConfig, CLIPModel

    folder = Path(folder)
    torch.manual_seed(seed)
    vocab_size = 2 * 256 + 2
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={
            **layers,
            "num_hidden_layers": 2,
            "vocab_size": vocab_size,
            "max_position_embeddings": 77,
            "bos_token_id": vocab_size - 2,
            "eos_token_id": vocab_size - 1,
            "pad_token_id": vocab_size - 1,
        },
        vision_config={**layers, "num_hidden_layers": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    write_char_tokenizer(folder)
    return folder


def build_tiny_aesthetic_head(
    folder: Path, embedding_dim: int = 16, hidden_sizes: tuple[int, ...] = (8, 4), seed: int = 0
) -> Path:
    """A random LAION-style aesthetic head (linear layers, one value out) in the plug-in layout."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    widths = [embedding_dim, *hidden_sizes, 1]
    tensors = {}
    for i in range(len(widths) - 1):
        tensors[f"layers.{i}.weight"] = torch.randn(widths[i + 1], widths[i], generator=generator)
        tensors[f"layers.{i}.bias"] = torch.randn(widths[i + 1], generator=generator)
    save_file(tensors, str(folder / "model.safetensors"))
    config = {
        "embedding_dim": embedding_dim,
        "hidden_sizes": list(hidden_sizes),
        "activation": "relu",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder
