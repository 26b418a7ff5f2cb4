"""What SD 1.x/2.x/XL users get: native sizes, single files, fp16 variants, memory, metadata.

Real sizes are checked on the meta device (no weights in memory); one full-size CPU
render is marked ``fullsize`` and kept out of the default run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from studio.engine.errors import ModelError
from studio.engine.models import load_model
from studio.engine.recipe import Recipe
from studio.engine.sampler import Sampler
from tests.original_format import build_tiny_sd1_layout, write_original_single_file

SD15_UNET = dict(
    sample_size=64,
    cross_attention_dim=768,
    attention_head_dim=8,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
)
SDXL_UNET = dict(
    sample_size=128,
    cross_attention_dim=2048,
    attention_head_dim=(5, 10, 20),
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
    use_linear_projection=True,
)
SD_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    latent_channels=4,
    layers_per_block=2,
)


def _meta_model(unet: dict, vae: dict = SD_VAE):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from studio.engine.models import LoadedModel, choose_device

    with torch.device("meta"):
        parts = (
            UNet2DConditionModel(**unet),
            AutoencoderKL(**vae),
            CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072)),
        )
    return LoadedModel(
        ref="meta",
        name="meta",
        path=Path("meta"),
        family="sd1",
        tokenizer=None,
        text_encoder=parts[2],
        unet=parts[0],
        vae=parts[1],
        scheduler_config={},
        preview_factors=torch.zeros(4, 3),
        preview_bias=torch.zeros(3),
        policy=choose_device("cpu"),
    )


def test_real_size_configs_have_the_real_parameter_counts_and_native_sizes():
    sd15 = _meta_model(SD15_UNET)
    assert sum(p.numel() for p in sd15.unet.parameters()) == 859_520_964
    assert sum(p.numel() for p in sd15.vae.parameters()) == 83_653_863
    assert sum(p.numel() for p in sd15.text_encoder.parameters()) == 123_060_480
    assert (sd15.size_factor, sd15.native_size) == (8, 512)
    assert (
        _meta_model({**SD15_UNET, "sample_size": 96, "cross_attention_dim": 1024}).native_size
        == 768
    )
    assert _meta_model(SDXL_UNET).native_size == 1024


def test_tiny_models_keep_their_own_native_size(tiny_model):
    assert tiny_model.native_size == 16  # sample size 8 × VAE factor 2


def test_a_model_larger_than_free_memory_is_refused_before_loading(tiny_model_dir, monkeypatch):
    from studio.engine import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    with pytest.raises(ModelError, match=r"needs about .* of memory to load and this machine has"):
        load_model(str(tiny_model_dir), device="cpu")


def test_real_size_weights_are_counted_from_headers_at_the_target_dtype(monkeypatch):
    from studio.engine import memory
    from studio.engine.memory_saving import check_fits, weights_bytes

    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 2**30)

    header = {"w": {"dtype": "F32", "shape": [859_520_964], "data_offsets": [0, 1]}}
    assert weights_bytes([header], torch.float16) == 2 * 859_520_964
    with pytest.raises(ModelError, match=r"sd15 needs about 3\.2 GB .* has 2\.0 GB free"):
        check_fits("sd15", weights_bytes([header], torch.float32), torch.device("cpu"))


@pytest.fixture(scope="module")
def sd1_layout(tmp_path_factory) -> tuple[Path, Path]:
    folder = build_tiny_sd1_layout(tmp_path_factory.mktemp("sd1-layout") / "sd1-tiny")
    return folder, write_original_single_file(folder, folder.parent / "sd1-tiny.safetensors")


def _realigned(model):
    """Fresh allocations for every weight: CPU kernels may round differently with a
    weight at another memory alignment, which is all that differs between the two paths."""
    for part in (model.text_encoder, model.unet, model.vae):
        for parameter in part.parameters():
            parameter.data = parameter.data.clone()
    return model


def test_a_single_file_converted_from_a_folder_renders_the_folders_pixels(sd1_layout):
    folder, single = sd1_layout
    from_folder = load_model(str(folder), device="cpu")
    from_file = load_model(str(single), device="cpu", config_dir=str(folder))
    for part in ("text_encoder", "unet", "vae"):
        ours, theirs = (
            getattr(from_folder, part).state_dict(),
            getattr(from_file, part).state_dict(),
        )
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    recipe = Recipe(prompt="a red house", steps=3, width=64, height=64, sampler="Euler")
    _, image_folder = Sampler(_realigned(from_folder)).render(recipe)
    _, image_file = Sampler(_realigned(from_file)).render(recipe)
    assert np.array_equal(image_folder, image_file)
    assert from_file.name == "sd1-tiny" and from_file.config_dir == folder


def test_a_single_file_is_read_without_a_second_copy(sd1_layout, monkeypatch):
    """No part is ever built with storage of its own: the file's tensors become the weights."""
    from studio.engine import single_file

    folder, single = sd1_layout
    reads: list[int] = []
    original = single_file.read_checkpoint

    def counting(*args):
        state = original(*args)
        reads.append(len(state))
        return state

    monkeypatch.setattr(single_file, "read_checkpoint", counting)
    model = load_model(str(single), device="cpu", config_dir=str(folder))
    pointers = {p.data_ptr() for part in (model.unet, model.vae) for p in part.parameters()}
    assert reads and len(pointers) == sum(
        1 for part in (model.unet, model.vae) for _ in part.parameters()
    )


def test_a_folder_with_only_fp16_variant_weights_loads(tiny_model_dir, tmp_path):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "fp16-only")
    for weights in copy.glob("*/*.safetensors"):
        weights.rename(weights.with_name(weights.stem + ".fp16.safetensors"))
    model = load_model(str(copy), device="cpu")
    reference = load_model(str(tiny_model_dir), device="cpu")
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            model.unet.state_dict().values(), reference.unet.state_dict().values(), strict=True
        )
    )


def test_sdxl_with_no_negative_prompt_matches_the_diffusers_pipeline(tiny_xl_model_dir):
    from diffusers import StableDiffusionXLPipeline

    from studio.engine import noise

    model = load_model(str(tiny_xl_model_dir), device="cpu")
    assert model.force_zeros_for_empty_prompt
    recipe = Recipe(prompt="a cat", steps=4, guidance=5.0, sampler="Euler", width=32, height=32)
    steps = list(Sampler(model).run(recipe))
    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_xl_model_dir), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    shape = (1, 4, 16, 16)
    out = pipe(
        "a cat",
        num_inference_steps=4,
        guidance_scale=5.0,
        height=32,
        width=32,
        latents=noise.start_noise(recipe.seed, shape),
        output_type="latent",
    ).images
    assert (steps[-1].latent - out).abs().max() < 1e-4


def test_hashes_are_a1111_short_hashes_and_cached_by_path_size_and_mtime(
    sd1_layout, tmp_path, monkeypatch
):
    from studio.engine import model_hash

    monkeypatch.setenv(model_hash.CACHE_DIR_ENV, str(tmp_path / "cache"))
    folder, single = sd1_layout
    assert model_hash.cached_model_hash(single) is None
    expected = hashlib.sha256(single.read_bytes()).hexdigest()[:10]
    assert model_hash.model_hash(single) == expected
    assert model_hash.cached_model_hash(single) == expected
    listing = "".join(
        f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(folder).as_posix()}\n"
        for f in sorted(
            folder.glob("*/*.safetensors"), key=lambda f: f.relative_to(folder).as_posix()
        )
    )
    assert model_hash.model_hash(folder) == hashlib.sha256(listing.encode()).hexdigest()[:10]

    def no_reading(*_args):
        raise AssertionError("a cached file was read again")

    monkeypatch.setattr(hashlib, "sha256", no_reading)
    assert model_hash.model_hash(single) == expected
    monkeypatch.undo()
    monkeypatch.setenv(model_hash.CACHE_DIR_ENV, str(tmp_path / "cache"))
    stat = single.stat()
    import os

    os.utime(single, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert model_hash.cached_model_hash(single) is None


def test_a_folders_hash_covers_only_the_weights_the_loader_reads(
    tiny_model_dir, tmp_path, monkeypatch
):
    from studio.engine import model_hash

    monkeypatch.setenv(model_hash.CACHE_DIR_ENV, str(tmp_path / "cache"))
    plain = model_hash.model_hash(tiny_model_dir)
    both = shutil.copytree(tiny_model_dir, tmp_path / "both")
    for weights in list(both.glob("*/*.safetensors")):
        fp16 = weights.with_name(weights.stem + ".fp16.safetensors")
        fp16.write_bytes(weights.read_bytes()[::-1])  # unread: plain weights are there
    assert model_hash.model_hash(both) == plain
    for weights in [w for w in both.glob("*/*.safetensors") if ".fp16." not in w.name]:
        weights.unlink()
    fp16_only = model_hash.folder_weight_files(both)
    assert fp16_only and all(".fp16." in f.name for f in fp16_only)
    assert model_hash.model_hash(both) != plain


def test_metadata_of_a_user_model_render_names_the_model_and_no_local_path(
    sd1_layout, tmp_path, monkeypatch
):
    from PIL import Image

    from studio.cli import main

    monkeypatch.setenv("NOISE_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    folder, single = sd1_layout
    out = tmp_path / "out.png"
    argv = ["--prompt", "a house", "--steps", "1", "--model", str(single)]
    assert main([*argv, "--model-config", str(folder), "--out", str(out), "--size", "32x32"]) == 0
    texts = Image.open(out).text
    assert all(str(folder.parent) not in text for text in texts.values())
    short = hashlib.sha256(single.read_bytes()).hexdigest()[:10]
    assert f"Model hash: {short}, Model: sd1-tiny," in texts["parameters"]
    assert json.loads(texts["noise-studio-recipe"])["model_config"] == "sd1-tiny"


def test_the_cli_size_follows_the_model_and_resume_keeps_the_config_folder(
    sd1_layout, tmp_path, capsys
):
    from studio.cli import main

    folder, single = sd1_layout
    checkpoint = tmp_path / "step1.ckpt"
    argv = ["--prompt", "a house", "--steps", "2", "--model", str(single), "--json"]
    assert (
        main([*argv, "--model-config", str(folder), "--checkpoint-at", "1", str(checkpoint)]) == 0
    )
    first = json.loads(capsys.readouterr().out)
    assert (first["width"], first["height"]) == (64, 64)  # sample size 8 × VAE factor 8
    assert main(["--resume", str(checkpoint), "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["sha256"] == first["sha256"] and resumed["model"] == "sd1-tiny"


def test_the_cli_size_without_size_is_the_models_own(tiny_model_dir, tmp_path, capsys):
    from studio.cli import main

    argv = ["--prompt", "a house", "--steps", "1", "--model", str(tiny_model_dir), "--json"]
    assert main([*argv, "--out", str(tmp_path / "out.png")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["width"], summary["height"]) == (16, 16)  # sample size 8 × VAE factor 2


def test_loading_a_single_file_prints_no_progress_bar(sd1_layout, capfd):
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    folder, single = sd1_layout
    diffusers_logging.enable_progress_bar()  # as a fresh process has them
    transformers_logging.enable_progress_bar()
    try:
        capfd.readouterr()
        load_model(str(single), device="cpu", config_dir=str(folder))
        printed = capfd.readouterr()
    finally:
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
    assert "Loading" not in printed.err + printed.out and "it/s" not in printed.err


def test_a_single_file_too_big_for_free_memory_is_refused_before_a_tensor_is_read(
    sd1_layout, monkeypatch
):
    from studio.engine import memory, single_file

    def no_reading(*_args):
        raise AssertionError("a tensor was read before the memory check")

    folder, single = sd1_layout
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    monkeypatch.setattr(single_file, "read_checkpoint", no_reading)
    with pytest.raises(ModelError, match=r"^sd1-tiny needs about .* this machine has .* free;"):
        load_model(str(single), device="cpu", config_dir=str(folder))


def test_cpu_offload_is_chosen_when_the_gpu_holds_the_largest_part_but_not_all(monkeypatch):
    from studio.engine import memory
    from studio.engine.memory_saving import check_fits

    free = {"cpu": 10**12, "cuda": 100}
    monkeypatch.setattr(memory, "available_bytes", lambda device: free[torch.device(device).type])
    gpu = torch.device("cuda")
    assert check_fits("m", 80, gpu, largest_part=50) is False  # it all fits
    assert check_fits("m", 300, gpu, largest_part=50) is True  # auto: offload
    assert check_fits("m", 80, gpu, largest_part=50, offload="on") is True
    with pytest.raises(ModelError, match="the GPU has"):
        check_fits("m", 300, gpu, largest_part=50, offload="off")
    with pytest.raises(ModelError, match="the GPU has"):
        check_fits("m", 300, gpu, largest_part=150)  # not even one part fits


def test_attention_slicing_on_slices_the_unets_attention(tiny_model_dir):
    from diffusers.models.attention_processor import SlicedAttnProcessor

    from studio.engine.memory_saving import MemorySaving

    plain = load_model(str(tiny_model_dir), device="cpu", memory_saving=MemorySaving("off", "off"))
    assert not any(isinstance(p, SlicedAttnProcessor) for p in plain.unet.attn_processors.values())
    sliced = load_model(str(tiny_model_dir), device="cpu", memory_saving=MemorySaving("off", "on"))
    processors = list(sliced.unet.attn_processors.values())
    assert processors and all(isinstance(p, SlicedAttnProcessor) for p in processors)


def test_a_single_files_config_folder_is_recognised_among_the_model_folders(
    sd1_layout, tiny_model_dir, tiny_xl_model_dir, tmp_path, monkeypatch
):
    from studio.engine.model_refs import find_config_folder

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    folder, single = sd1_layout
    others = tmp_path / "others"
    shutil.copytree(tiny_model_dir, others / "a-tiny")  # SD 1-like, other UNet shapes
    shutil.copytree(tiny_xl_model_dir, others / "b-xl")
    assert find_config_folder(single, [others]) is None
    assert find_config_folder(single, [others, folder.parent]) == folder


def test_folders_that_fit_but_disagree_on_prediction_type_are_not_guessed_between(
    sd1_layout, tmp_path, monkeypatch
):
    from studio.engine.model_refs import find_config_folder

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    folder, single = sd1_layout
    models = tmp_path / "models"
    shutil.copytree(folder, models / "a-base")
    shutil.copytree(folder, models / "b-base-copy")
    assert find_config_folder(single, [models]) == models / "a-base"  # same settings: either
    v_config = models / "c-768-v" / "scheduler" / "scheduler_config.json"
    shutil.copytree(folder, models / "c-768-v")
    v_config.write_text(
        json.dumps({**json.loads(v_config.read_text()), "prediction_type": "v_prediction"})
    )
    assert find_config_folder(single, [models]) is None  # the user is asked instead


def test_real_unet_configs_build_the_input_blocks_of_the_original_files():
    from studio.engine.model_files import _config_unet_layout

    # input_blocks.0 to .11 in an SD 1.x/2.x file, .0 to .8 in an SDXL one.
    assert _config_unet_layout(SD15_UNET) == (320, 12)
    assert _config_unet_layout(SDXL_UNET) == (320, 9)


def test_hf_cache_models_are_named_org_slash_name(tiny_model_dir, tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--someorg--tiny" / "snapshots" / "1d0c4ebf"
    shutil.copytree(tiny_model_dir, snapshot)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert load_model("hf:someorg/tiny", device="cpu").name == "someorg/tiny"
    assert load_model(str(snapshot), device="cpu").name == "someorg/tiny"


def test_fp16_sdxl_keeps_a_force_upcast_vae_in_fp32(tiny_xl_model_dir):
    model = load_model(str(tiny_xl_model_dir), device="cpu:fp16")
    assert model.unet.dtype == torch.float16 and model.vae.dtype == torch.float32


def test_memory_savers_parse_and_apply(tiny_model_dir, monkeypatch):
    from studio.engine import memory
    from studio.engine.memory_saving import MemorySaving, tiling_when_short

    assert MemorySaving.parse("vae_tiling=on, cpu-offload=off") == MemorySaving("on", "auto", "off")
    with pytest.raises(ModelError, match="Unknown memory saving"):
        MemorySaving.parse("vae_tiling=maybe")
    model = load_model(str(tiny_model_dir), device="cpu", memory_saving=MemorySaving("auto"))
    latent = torch.zeros(1, 4, 64, 64)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10**12)
    with tiling_when_short(model, latent) as tiled:
        assert not tiled
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10**6)
    with tiling_when_short(model, latent) as tiled:
        assert tiled and model.vae.use_tiling
    assert not model.vae.use_tiling


def test_part_offload_keeps_one_part_on_the_device():
    from studio.engine.memory_saving import PartOffload

    class Part(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.place = "cpu"
            self.decoder = torch.nn.Identity()

        def to(self, device):  # records where the part would live
            self.place = str(device)
            return self

        def forward(self, x):
            return self.decoder(x)

    text, unet, vae = Part(), Part(), Part()
    offload = PartOffload([text, unet, vae], torch.device("cuda"))
    unet(torch.zeros(1))
    assert (text.place, unet.place, vae.place) == ("cpu", "cuda", "cpu")
    vae.decoder(torch.zeros(1))  # the VAE runs through its decoder, never its forward
    assert (text.place, unet.place, vae.place) == ("cpu", "cpu", "cuda")
    offload.remove()


@pytest.mark.slow
@pytest.mark.fullsize
def test_full_size_sd15_renders_on_cpu(tmp_path):
    """SD 1.5 at its real size with random weights: 512×512, 2 steps, engine vs bare pipeline."""
    import time

    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from studio.engine.models import LoadedModel, choose_device
    from tests.tiny_models import write_char_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).eval()
    vae = AutoencoderKL(**SD_VAE).eval()
    text = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            vocab_size=514,
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
        )
    ).eval()
    write_char_tokenizer(tmp_path / "tok")
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path / "tok")
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )
    model = LoadedModel(
        "sd15-random",
        "sd15-random",
        tmp_path,
        "sd1",
        tokenizer,
        text,
        unet,
        vae,
        dict(scheduler.config),
        torch.zeros(4, 3),
        torch.zeros(3),
        choose_device("cpu"),
    )
    assert model.native_size == 512
    recipe = Recipe(prompt="a house", steps=2, width=512, height=512, sampler="Euler")
    began = time.perf_counter()
    steps = list(Sampler(model).run(recipe))
    engine_s = time.perf_counter() - began
    pipe = StableDiffusionPipeline(
        vae, text, tokenizer, unet, scheduler, None, None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    from studio.engine import noise

    began = time.perf_counter()
    out = pipe(
        "a house",
        num_inference_steps=2,
        guidance_scale=7.0,
        height=512,
        width=512,
        latents=noise.start_noise(0, (1, 4, 64, 64)),
        output_type="latent",
    ).images
    bare_s = time.perf_counter() - began
    print(
        f"\nSD1.5 512² 2 steps CPU: engine {engine_s:.1f} s, bare pipeline {bare_s:.1f} s, ratio {engine_s / bare_s:.2f}"
    )
    assert torch.equal(steps[-1].latent, out)
