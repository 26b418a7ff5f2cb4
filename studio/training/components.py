"""Shapes of the bundled model's components, and builders for them.

``ModelShape`` holds every size that matters; ``BUNDLED`` is the shipped model and
``TINY`` a throwaway one for tests. The components are the stock diffusers/transformers
classes, so the exported folder is an ordinary Stable Diffusion-style pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from studio.training.vocab import MAX_LENGTH


@dataclass(frozen=True)
class ModelShape:
    """Sizes of the text encoder, UNet and VAE."""

    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 2
    unet_channels: tuple[int, ...] = (32, 64, 128)
    unet_layers_per_block: int = 1
    unet_head_dim: int = 32
    vae_channels: tuple[int, ...] = (16, 32, 64)  # len 3 -> latents 4x smaller than the image
    vae_groups: int = 8
    latent_channels: int = 4
    image_size: int = 64

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae_channels) - 1)


BUNDLED = ModelShape()
TINY = ModelShape(
    text_hidden=32,
    text_layers=1,
    text_heads=2,
    unet_channels=(32, 32),
    unet_head_dim=16,
    vae_channels=(16, 16),
    vae_groups=8,
    image_size=32,
)


def build_text_encoder(
    shape: ModelShape, vocab_size: int, bos_id: int, eos_id: int, pad_id: int
) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=shape.text_hidden,
        intermediate_size=shape.text_hidden * 4,
        num_hidden_layers=shape.text_layers,
        num_attention_heads=shape.text_heads,
        max_position_embeddings=MAX_LENGTH,
        projection_dim=shape.text_hidden,
        hidden_act="quick_gelu",
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    return CLIPTextModel(config)


def build_unet(shape: ModelShape) -> UNet2DConditionModel:
    levels = len(shape.unet_channels)
    # Cross-attention only at the lower resolutions: cheaper, and the layout is coarse anyway.
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1)
    up = ("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(
        sample_size=shape.image_size // shape.vae_factor,
        in_channels=shape.latent_channels,
        out_channels=shape.latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=shape.unet_channels,
        layers_per_block=shape.unet_layers_per_block,
        cross_attention_dim=shape.text_hidden,
        attention_head_dim=[max(1, c // shape.unet_head_dim) for c in shape.unet_channels],
        norm_num_groups=min(32, shape.unet_channels[0]),
    )


def build_vae(shape: ModelShape) -> AutoencoderKL:
    n = len(shape.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=shape.vae_channels,
        layers_per_block=1,
        latent_channels=shape.latent_channels,
        norm_num_groups=shape.vae_groups,
        sample_size=shape.image_size,
        # No attention in the VAE: it is trained on crops and must not care about image size.
        mid_block_add_attention=False,
    )


def build_scheduler() -> EulerDiscreteScheduler:
    """The training noise schedule (SD 1.x): scaled-linear betas, 1000 steps, epsilon prediction."""
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        timestep_spacing="leading",
        steps_offset=1,
    )
