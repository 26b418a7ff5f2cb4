from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from studio.engine.errors import DecodeError
from studio.engine.preview import decode, linear_preview
from tests.tiny_models import build_tiny_preview_decoder


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


# ---- the tiny preview decoder -------------------------------------------------


def test_preview_decoder_loads_and_previews_at_image_resolution(tmp_path):
    from studio.engine.preview import load_preview_decoder

    decoder = load_preview_decoder(build_tiny_preview_decoder(tmp_path / "pd"), 4, 2)
    image = decoder(torch.randn(1, 4, 6, 5))
    assert image.shape == (12, 10, 3) and image.dtype == np.uint8
    assert image.std() > 0


@pytest.mark.parametrize(
    ("blocks", "latent"),
    [((1, 0), (2, 4, 6, 5)), ((2, 1, 0), (1, 4, 7, 4)), ((3, 0, 0), (1, 4, 16, 16))],
)
def test_the_folded_full_resolution_tail_computes_what_the_module_does(blocks, latent):
    from diffusers import AutoencoderTiny

    from studio.engine.preview import fast_decoder_forward

    torch.manual_seed(1)
    stages = len(blocks)
    model = AutoencoderTiny(
        encoder_block_out_channels=(4,) * stages,
        decoder_block_out_channels=(8,) * stages,
        num_encoder_blocks=(0,) * stages,
        num_decoder_blocks=blocks,
    ).eval()
    decoder = model.decoder
    with torch.no_grad():  # a random last conv is scaled up so that its border terms count
        decoder.layers[-1].weight.mul_(10)
    forward = fast_decoder_forward(decoder)
    assert forward is not None
    latent = torch.randn(*latent) * 2
    with torch.inference_mode():
        torch.testing.assert_close(forward(latent), decoder(latent), atol=1e-4, rtol=1e-4)


def test_a_loaded_preview_decoder_runs_the_folded_tail(tmp_path):
    from studio.engine.preview import load_preview_decoder

    decoder = load_preview_decoder(build_tiny_preview_decoder(tmp_path / "pd"), 4, 2)
    assert decoder.forward is not None
    latent = torch.randn(1, 4, 6, 5)
    with torch.inference_mode():
        torch.testing.assert_close(decoder.forward(latent), decoder.model.decoder(latent))


@pytest.mark.parametrize("overrides", [{"act_fn": "silu"}, {"upsample_fn": "bilinear"}])
def test_a_decoder_the_fold_does_not_know_runs_as_it_is(tmp_path, overrides):
    from studio.engine.preview import load_preview_decoder

    decoder = load_preview_decoder(build_tiny_preview_decoder(tmp_path / "pd", **overrides), 4, 2)
    assert decoder.forward is None
    assert decoder(torch.randn(1, 4, 6, 5)).shape == (12, 10, 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"_class_name": "AutoencoderKL"}, "not an AutoencoderTiny"),
        ({"decoder_block_out_channels": [8, 100000]}, "decoder_block_out_channels"),
        ({"act_fn": "os.system"}, "act_fn"),
        ({"upsampling_scaling_factor": 4}, "factor of 2"),
        ({"latent_channels": 16}, "latent channels"),
        ({"scaling_factor": float("nan")}, "scaling_factor"),
        ({"num_decoder_blocks": [1, True]}, "num_decoder_blocks"),
    ],
)
def test_preview_decoder_config_values_are_bounded(tmp_path, overrides, message):
    from studio.engine.errors import ModelError
    from studio.engine.preview import load_preview_decoder

    folder = build_tiny_preview_decoder(tmp_path / "pd", **overrides)
    with pytest.raises(ModelError, match=message):
        load_preview_decoder(folder, 4, 2)


def test_preview_decoder_refuses_pickled_or_mismatched_weights(tmp_path):
    from studio.engine.errors import ModelError
    from studio.engine.preview import WEIGHTS_NAME, load_preview_decoder

    pickled = build_tiny_preview_decoder(tmp_path / "pickled")
    torch.save({"x": torch.zeros(1)}, pickled / WEIGHTS_NAME)
    with pytest.raises(ModelError):
        load_preview_decoder(pickled, 4, 2)
    wider = build_tiny_preview_decoder(tmp_path / "wider", decoder_block_out_channels=[16, 16])
    with pytest.raises(ModelError, match="could not be loaded"):
        load_preview_decoder(wider, 4, 2)


def test_model_without_a_preview_decoder_keeps_the_linear_map(tiny_model, tiny_sampler):
    from studio.engine.preview import describe_preview
    from studio.engine.recipe import Recipe

    assert tiny_model.preview_decoder is None and describe_preview(tiny_model) == "linear map"
    step = next(iter(tiny_sampler.run(Recipe(prompt="a red car", steps=2, width=32, height=32))))
    expected = linear_preview(step.x0_pred, tiny_model.preview_factors, tiny_model.preview_bias)
    assert np.array_equal(step.preview_x0, expected) and step.preview_x0.shape == (16, 16, 3)


def test_model_folder_preview_decoder_is_used_and_a_broken_one_falls_back(
    tiny_model_dir, tmp_path, caplog
):
    import shutil

    from studio.engine.models import load_model
    from studio.engine.preview import describe_preview
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler

    folder = tmp_path / "with-decoder"
    shutil.copytree(tiny_model_dir, folder)
    build_tiny_preview_decoder(folder / "preview_decoder")
    model = load_model(str(folder), device="cpu")
    assert describe_preview(model) == "tiny decoder (preview_decoder)"
    step = next(iter(Sampler(model).run(Recipe(prompt="a red car", steps=2, width=32, height=32))))
    assert step.preview_x0.shape == (32, 32, 3)
    assert np.array_equal(step.preview_x0, model.preview_decoder(step.x0_pred))

    (folder / "preview_decoder" / "config.json").write_text('{"_class_name": "AutoencoderTiny"')
    broken = load_model(str(folder), device="cpu")
    assert broken.preview_decoder is None and "Preview decoder skipped" in caplog.text


def test_single_file_models_find_taesd_beside_them(tmp_path):
    from studio.engine.preview import preview_decoder_candidates

    beside = preview_decoder_candidates(tmp_path / "model.safetensors", "sdxl", [tmp_path / "cfg"])
    assert beside == [tmp_path / "taesdxl", tmp_path / "cfg" / "taesdxl"]
    (tmp_path / "sd15").mkdir()
    folder = preview_decoder_candidates(tmp_path / "sd15", "sd1")
    assert folder == [tmp_path / "sd15" / "preview_decoder", tmp_path / "taesd"]


def test_taesd_in_a_configured_folder_is_found(tmp_path, monkeypatch):
    from studio.engine.preview import find_preview_decoder

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    model = tmp_path / "models" / "sd15.safetensors"
    monkeypatch.delenv("NOISE_STUDIO_PREVIEW_DECODERS", raising=False)
    build_tiny_preview_decoder(tmp_path / "decoders" / "taesd")
    assert find_preview_decoder(model, "sd1", 4, 2) is None
    monkeypatch.setenv(
        "NOISE_STUDIO_PREVIEW_DECODERS",
        os.pathsep.join([str(tmp_path / "elsewhere"), str(tmp_path / "decoders")]),
    )
    found = find_preview_decoder(model, "sd1", 4, 2)
    assert found is not None and found.folder == tmp_path / "decoders" / "taesd"
    assert found.describe() == "tiny decoder (taesd)"


def test_a_model_without_preview_factors_gets_a_map_fitted_to_its_vae(tiny_model):
    """The tiny model ships no preview.json and is no known family: its map is fitted."""
    from studio.engine.preview import fit_linear_map

    factors, bias = fit_linear_map(tiny_model.vae, 4)
    assert torch.equal(tiny_model.preview_factors, factors)
    assert torch.equal(tiny_model.preview_bias, bias)
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    full = decode(tiny_model.vae, latent).astype(np.float32)
    small = (
        torch.nn.functional.avg_pool2d(torch.from_numpy(full).permute(2, 0, 1)[None], 2)[0]
        .permute(1, 2, 0)
        .numpy()
    )
    fitted_error = np.abs(linear_preview(latent, factors, bias) - small).mean()
    placeholder = torch.zeros(4, 3)
    placeholder[0, 0] = placeholder[1, 1] = placeholder[2, 2] = 0.5
    placeholder_error = np.abs(linear_preview(latent, placeholder, torch.zeros(3)) - small).mean()
    assert fitted_error < placeholder_error


def test_taesd_in_the_local_hugging_face_cache_is_found(tmp_path, monkeypatch):
    from studio.engine.preview import find_preview_decoder

    snapshot = tmp_path / "hub" / "models--madebyollin--taesd" / "snapshots" / "abc123"
    snapshot.parent.mkdir(parents=True)
    build_tiny_preview_decoder(snapshot)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = tmp_path / "sd15.safetensors"
    found = find_preview_decoder(model, "sd1", 4, 2)
    assert found is not None and found.folder == snapshot
    assert found.describe() == "tiny decoder (madebyollin/taesd)"
    assert find_preview_decoder(model, "sdxl", 4, 2) is None  # taesdxl is not there


@pytest.mark.bundled
def test_a_frame_gate_spends_the_tiny_decoder_only_on_frames_that_are_shown():
    """Latest wins: with a gate, steps nobody will see keep the linear preview; the last
    step always gets the tiny decoder's, and without a gate every step does."""
    from studio.engine.models import load_model
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler

    sampler = Sampler(load_model("bundled", device="cpu"))
    recipe = Recipe("a red car on a mountain road at sunset", seed=3, steps=6)
    full = [s.preview_x0.shape[:2] for s in sampler.run(recipe)]
    assert full == [(64, 64)] * 6
    asked: list[int] = []
    sampler.frame_gate = lambda: asked.append(1) or len(asked) == 2
    gated = [s.preview_x0.shape[:2] for s in sampler.run(recipe)]
    assert gated == [(16, 16), (64, 64), (16, 16), (16, 16), (16, 16), (64, 64)]
    assert len(asked) == 5, "the last step is drawn without asking"
