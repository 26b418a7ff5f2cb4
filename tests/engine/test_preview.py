from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from studio.engine.errors import DecodeError
from studio.engine.preview import decode, linear_preview


class FakeVae:
    """Decodes to NaN while in float16, to a constant grey in float32: like an fp16 SD VAE overflowing."""

    def __init__(self, dtype: torch.dtype, value: float = 0.0) -> None:
        self.dtype, self.value = dtype, value
        self.device = torch.device("cpu")
        self.config = SimpleNamespace(scaling_factor=0.5, shift_factor=None)
        self.dtypes_used: list[torch.dtype] = []

    def to(self, dtype: torch.dtype) -> FakeVae:
        self.dtype = dtype
        return self

    def decode(self, latent: torch.Tensor) -> SimpleNamespace:
        self.dtypes_used.append(self.dtype)
        fill = float("nan") if self.dtype == torch.float16 else self.value
        return SimpleNamespace(sample=torch.full((1, 3, 8, 8), fill))


def test_nan_decode_is_redone_in_fp32_and_the_vae_dtype_restored():
    vae = FakeVae(torch.float16)
    image = decode(vae, torch.zeros(1, 4, 4, 4))
    assert vae.dtypes_used == [torch.float16, torch.float32] and vae.dtype == torch.float16
    assert image.shape == (8, 8, 3) and int(image[0, 0, 0]) == 128


def test_nan_in_fp32_is_refused():
    vae = FakeVae(torch.float32, value=float("nan"))
    with pytest.raises(DecodeError, match="NaN"):
        decode(vae, torch.zeros(1, 4, 4, 4))


def test_all_black_is_refused():
    with pytest.raises(DecodeError, match="black"):
        decode(FakeVae(torch.float32, value=-1.0), torch.zeros(1, 4, 4, 4))


def test_linear_preview_applies_factors_and_bias():
    latent = torch.zeros(1, 4, 2, 3)
    latent[0, 0] = 1.0
    factors = torch.zeros(4, 3)
    factors[0] = torch.tensor([1.0, 0.0, -1.0])
    preview = linear_preview(latent, factors, torch.tensor([0.0, 0.5, 0.0]))
    assert preview.shape == (2, 3, 3) and preview.dtype == np.uint8
    assert preview[0, 0].tolist() == [255, 191, 0]
