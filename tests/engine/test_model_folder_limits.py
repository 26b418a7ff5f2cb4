"""Model folders that name code, hold oversized files or claim huge sizes (issue 11, items 1-3).

Every hostile input is made here. A module written into a temporary folder
creates a marker file when imported: an absent marker and an unchanged
``sys.modules`` prove that nothing a model folder named was imported or run.
"""

from __future__ import annotations

import builtins
import json
import shutil
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from studio.engine import model_files
from studio.engine.errors import ModelError
from studio.engine.model_files import (
    MAX_JSON_FILE_BYTES,
    MAX_VOCAB_FILE_BYTES,
    ModelFileError,
    check_model_folder,
)

MARKER_MODULE = "noise_marker_module"
SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
# What loading a model may bring into sys.modules; anything else came from a model folder.
LOADER_PACKAGES = {
    "diffusers",
    "transformers",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "torch",
    "accelerate",
    "studio",
    "regex",
    "PIL",
    "numpy",
    "filelock",
    "fsspec",
    "packaging",
    "yaml",
    "tqdm",
    "importlib_metadata",
    "requests",
    "urllib3",
    "jinja2",
    "sentencepiece",
    "google",
    "scipy",
}


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


@pytest.fixture
def marker_module(tmp_path, monkeypatch) -> Path:
    """An importable module that leaves a marker file when it is imported."""
    marker = tmp_path / "imported"
    modules = tmp_path / "site"
    modules.mkdir()
    (modules / f"{MARKER_MODULE}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass X:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.delitem(sys.modules, MARKER_MODULE, raising=False)
    return marker


@pytest.fixture
def never_prompt(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the user was asked something while a model loaded")

    monkeypatch.setattr(builtins, "input", refuse)


def _edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _single_file(path: Path) -> Path:
    """Original-layout SD1 weights whose UNet fits the tiny config folder's unet/config.json."""
    save_file(
        {
            "model.diffusion_model.input_blocks.0.0.weight": np.zeros((8, 4, 3, 3), np.float16),
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (
                np.zeros((8, 16), np.float16)
            ),
            SD1_TEXT: np.zeros((4, 16), np.float16),
        },
        str(path),
    )
    return path


def _remote_code_text_encoder(folder: Path, marker: Path) -> dict:
    (folder / "text_encoder" / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    _edit_json(folder / "text_encoder" / "config.json", auto_map={"AutoModel": "evil.Evil"})
    return {"text_encoder": ["transformers", "AutoModel"]}


_HOSTILE_INDEXES = {
    "arbitrary module": lambda folder, marker: {"text_encoder": [MARKER_MODULE, "X"]},
    "module as scheduler": lambda folder, marker: {"scheduler": [MARKER_MODULE, "X"]},
    "zen of python": lambda folder, marker: {"tokenizer": ["this", "X"]},
    "custom pipeline": lambda folder, marker: {"_class_name": [MARKER_MODULE, "X"]},
    "extra component": lambda folder, marker: {"watermarker": [MARKER_MODULE, "X"]},
    "auto class with remote code": _remote_code_text_encoder,
}


# ---- item 1: model_index.json decides nothing outside the allow-list ------------------


@pytest.mark.parametrize("hostile", list(_HOSTILE_INDEXES))
def test_a_config_folder_imports_and_runs_nothing_it_names(
    model_copy, tmp_path, marker_module, never_prompt, hostile
):
    from studio.engine.models import load_model

    _edit_json(
        model_copy / "model_index.json", **_HOSTILE_INDEXES[hostile](model_copy, marker_module)
    )
    weights = _single_file(tmp_path / "model.safetensors")
    sys.modules.pop("this", None)
    before = set(sys.modules)
    with pytest.raises(ModelError) as error:
        load_model(str(weights), device="cpu", config_dir=str(model_copy))
    imported = set(sys.modules) - before
    assert str(model_copy / "model_index.json") in str(error.value) or "auto_map" in str(
        error.value
    )
    assert "\n" not in str(error.value)
    assert not marker_module.exists()
    assert MARKER_MODULE not in sys.modules and "this" not in sys.modules
    assert {name.split(".")[0] for name in imported} <= LOADER_PACKAGES


@pytest.mark.parametrize("hostile", list(_HOSTILE_INDEXES))
def test_a_diffusers_folder_naming_other_code_is_refused(
    model_copy, marker_module, never_prompt, hostile
):
    _edit_json(
        model_copy / "model_index.json", **_HOSTILE_INDEXES[hostile](model_copy, marker_module)
    )
    with pytest.raises(ModelFileError) as error:
        check_model_folder(model_copy)
    assert error.value.reason == "incompatible"
    assert not marker_module.exists()


def test_the_allow_list_accepts_the_published_sd_entries(model_copy):
    _edit_json(
        model_copy / "model_index.json",
        safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"],
        feature_extractor=["transformers", "CLIPImageProcessor"],
        scheduler=["diffusers", "PNDMScheduler"],
        tokenizer=["transformers", "CLIPTokenizerFast"],
    )
    check_model_folder(model_copy)
    model_files.check_config_folder(model_copy)


def test_loaders_are_told_never_to_trust_remote_code(model_copy, monkeypatch):
    from transformers import CLIPTextModel

    from studio.engine.models import load_model

    seen: list[object] = []
    original = CLIPTextModel.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("trust_remote_code", "absent"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(CLIPTextModel, "from_pretrained", classmethod(spy))
    load_model(str(model_copy), device="cpu")
    assert seen == [False]


# ---- item 2: every non-weight file is sized before anything opens it ----------------------


_SIZED_FILES = [
    "tokenizer/tokenizer.json",
    "tokenizer/merges.txt",
    "tokenizer/vocab.json",
    "tokenizer/special_tokens_map.json",
    "tokenizer/added_tokens.json",
    "tokenizer/tokenizer_config.json",
    "scheduler/scheduler_config.json",
    "text_encoder/generation_config.json",
    "vae/config.json",
]


def _enormous(path: Path, size: int = 2**33) -> Path:
    with open(path, "ab") as file:
        file.truncate(size)  # sparse: the size is claimed, nothing is written
    return path


def _refused_without_reading(check, folder: Path) -> ModelFileError:
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as error:
            check(folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    return error.value


@pytest.mark.parametrize("relative", _SIZED_FILES)
def test_an_enormous_non_weight_file_is_refused_unread(model_copy, relative):
    big = _enormous(model_copy / relative)
    error = _refused_without_reading(check_model_folder, model_copy)
    assert str(big) in str(error) and "more than the" in str(error)


@pytest.mark.parametrize("relative", ["tokenizer/merges.txt", "tokenizer/special_tokens_map.json"])
def test_an_enormous_file_in_a_config_folder_is_refused_unread(model_copy, relative):
    big = _enormous(model_copy / relative)
    error = _refused_without_reading(lambda f: model_files.check_config_folder(f), model_copy)
    assert str(big) in str(error)


@pytest.mark.parametrize("entry", ["omitted", "null"])
def test_a_tokenizer_the_config_folder_does_not_list_is_still_sized(model_copy, tmp_path, entry):
    """The single-file loader reads tokenizer/ by name, so listing it as none hides nothing."""
    from studio.engine.models import load_model

    index = json.loads((model_copy / "model_index.json").read_text())
    if entry == "omitted":
        del index["tokenizer"]
    else:
        index["tokenizer"] = [None, None]
    (model_copy / "model_index.json").write_text(json.dumps(index))
    big = _enormous(model_copy / "tokenizer" / "merges.txt")
    error = _refused_without_reading(lambda f: model_files.check_config_folder(f), model_copy)
    assert str(big) in str(error)
    weights = _single_file(tmp_path / "model.safetensors")
    with pytest.raises(ModelError, match="more than the"):
        load_model(str(weights), device="cpu", config_dir=str(model_copy))


def test_an_xl_folder_listing_its_second_tokenizer_as_none_still_sizes_it(
    tiny_xl_model_dir, tmp_path
):
    """An XL folder's loader reads tokenizer_2/ whenever model_index.json has the key."""
    folder = Path(shutil.copytree(tiny_xl_model_dir, tmp_path / "xl"))
    _edit_json(folder / "model_index.json", tokenizer_2=[None, None], text_encoder_2=[None, None])
    big = _enormous(folder / "tokenizer_2" / "merges.txt")
    error = _refused_without_reading(check_model_folder, folder)
    assert str(big) in str(error) and "more than the" in str(error)


@pytest.mark.parametrize(
    ("relative", "limit"),
    [
        ("tokenizer/merges.txt", MAX_VOCAB_FILE_BYTES),
        ("tokenizer/added_tokens.json", MAX_JSON_FILE_BYTES),
    ],
)
def test_load_model_refuses_a_file_just_over_its_cap(model_copy, relative, limit):
    from studio.engine.models import load_model

    big = _enormous(model_copy / relative, limit + 1)
    with pytest.raises(ModelError, match="more than the") as error:
        load_model(str(model_copy), device="cpu")
    assert str(big) in str(error.value)


def test_a_tokenizer_file_that_is_a_fifo_is_not_opened(model_copy):
    import os

    fifo = model_copy / "tokenizer" / "special_tokens_map.json"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="not a regular file") as error:
        check_model_folder(model_copy)
    assert str(fifo) in str(error.value)


# ---- item 3: config values that allocate are bounded; weights must cover the config ----------


@pytest.mark.parametrize(
    ("relative", "changes", "words"),
    [
        ("scheduler/scheduler_config.json", {"num_train_timesteps": 500_000_000}, "num_train"),
        ("scheduler/scheduler_config.json", {"num_train_timesteps": 5e8}, "num_train"),
        ("text_encoder/config.json", {"projection_dim": 20_000_000}, "projection_dim"),
        ("text_encoder/config.json", {"vocab_size": 10**9}, "vocab_size"),
        ("text_encoder/config.json", {"intermediate_size": 10**7}, "intermediate_size"),
        ("unet/config.json", {"block_out_channels": [8, 10**6]}, "block_out_channels"),
        ("unet/config.json", {"transformer_layers_per_block": [[1], [10**5]]}, "transformer"),
        ("vae/config.json", {"latent_channels": 10**6}, "latent_channels"),
    ],
)
def test_config_values_that_allocate_are_bounded(model_copy, relative, changes, words):
    _edit_json(model_copy / relative, **changes)
    with pytest.raises(ModelFileError, match="incompatible model") as error:
        check_model_folder(model_copy)
    assert words in str(error.value) and str(model_copy / relative) in str(error.value)


def test_unbounded_scheduler_in_a_config_folder_is_refused(model_copy, tmp_path):
    from studio.engine.models import load_model

    _edit_json(model_copy / "scheduler" / "scheduler_config.json", num_train_timesteps=500_000_000)
    weights = _single_file(tmp_path / "model.safetensors")
    with pytest.raises(ModelError, match="num_train_timesteps"):
        load_model(str(weights), device="cpu", config_dir=str(model_copy))


def _drop_tensor(weights: Path, prefix: str) -> str:
    tensors = load_file(str(weights))
    dropped = next(k for k in sorted(tensors) if k.startswith(prefix))
    del tensors[dropped]
    save_file(tensors, str(weights))
    return dropped


def test_a_projection_encoder_without_its_projection_weights_is_refused(model_copy):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from studio.engine.models import load_model

    config = json.loads((model_copy / "text_encoder" / "config.json").read_text())
    keep = {k: v for k, v in config.items() if k not in ("architectures", "transformers_version")}
    CLIPTextModelWithProjection(CLIPTextConfig(**keep)).save_pretrained(
        model_copy / "text_encoder", safe_serialization=True
    )
    _edit_json(
        model_copy / "model_index.json",
        text_encoder=["transformers", "CLIPTextModelWithProjection"],
    )
    load_model(str(model_copy), device="cpu")  # whole, it loads
    _drop_tensor(model_copy / "text_encoder" / "model.safetensors", "text_projection")
    with pytest.raises(ModelError, match="random values") as error:
        load_model(str(model_copy), device="cpu")
    assert str(model_copy / "text_encoder") in str(error.value)


@pytest.mark.parametrize(
    ("component", "prefix"),
    [("unet", "up_blocks."), ("vae", "decoder.mid_block"), ("text_encoder", "text_model.final")],
)
def test_weights_missing_a_layer_their_config_builds_are_refused(model_copy, component, prefix):
    from studio.engine.models import load_model

    weights = next((model_copy / component).glob("*.safetensors"))
    if component == "text_encoder" and not any(
        k.startswith(prefix) for k in load_file(str(weights))
    ):
        prefix = prefix.removeprefix("text_model.")
    _drop_tensor(weights, prefix)
    with pytest.raises(ModelError, match="random values") as error:
        load_model(str(model_copy), device="cpu")
    assert str(model_copy / component) in str(error.value)


def test_a_single_file_missing_weights_its_config_folder_builds_is_refused(
    model_copy, tmp_path, monkeypatch
):
    """A part left without some of its tensors (never filled with random values) is refused."""
    from studio.engine.models import load_model

    weights = _single_file(tmp_path / "model.safetensors")
    with pytest.raises(ModelError, match="random values") as error:
        load_model(str(weights), device="cpu", config_dir=str(model_copy))
    assert str(weights) in str(error.value) and "unet" in str(error.value)
