"""Hostile and broken model files (issue 7, cases 1-4).

Every test makes its hostile input itself. Nothing here may run code from a
file: a pickle payload that creates a marker file proves it when the marker
stays absent.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import socket
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from studio.engine.errors import ModelError
from studio.engine.model_files import (
    PICKLE,
    SAFETENSORS,
    UNKNOWN,
    ZIP,
    ModelFileError,
    check_compatibility,
    check_diffusers_folder,
    check_model_folder,
    check_safetensors,
    sniff_format,
)
from tests.engine.hostile_inputs import (
    evil_pickle,
    rebuild_text_encoder,
    rebuild_unet,
    safetensors_bytes,
    torch_style_zip,
)

STUDIO_SOURCE = Path(__file__).resolve().parents[2] / "studio"
CORRUPT = "incomplete or corrupt model file"


# ---- fixtures ------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    """Any network attempt fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="session")
def sd_folder(tiny_model_dir) -> Path:
    return tiny_model_dir


@pytest.fixture(scope="session")
def wide_sd_folder(tiny_model_dir, tmp_path_factory) -> Path:
    """The same model with a wider text encoder: stands in for SD2-shaped weights with an SD1 config."""
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("wide") / "model"))
    rebuild_text_encoder(folder, hidden_size=24)
    return folder


@pytest.fixture(scope="session")
def inpainting_folder(tiny_model_dir, tmp_path_factory) -> Path:
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("inpaint") / "model"))
    rebuild_unet(folder, in_channels=9)
    return folder


@pytest.fixture
def model_copy(sd_folder, tmp_path) -> Path:
    return Path(shutil.copytree(sd_folder, tmp_path / "model-copy"))


def assert_names(error: pytest.ExceptionInfo, path: Path) -> None:
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, ModelError)


# ---- case 1: pickles and zips are refused, never unpickled --------------------


def test_marker_payload_really_runs_code_when_unpickled(tmp_path):
    """Guards the other tests: an absent marker only means something if the payload works."""
    marker = tmp_path / "ran"
    pickle.loads(evil_pickle(marker)).get("state_dict").close()
    assert marker.exists()


def _hostile_files(tmp_path: Path, marker: Path) -> list[Path]:
    payload = evil_pickle(marker)
    inner_zip = torch_style_zip(payload)
    files: dict[str, bytes] = {}
    for suffix in (".ckpt", ".pt", ".bin", ".pth", ".safetensors", ""):
        files[f"model-p2{suffix}"] = payload
    for protocol in (0, 1, 5):
        files[f"model-protocol{protocol}.safetensors"] = evil_pickle(marker, protocol)
    for name, member in {
        "torch-zip.pt": "archive/data.pkl",
        "torch-zip.safetensors": "archive/data.pkl",
        "deep-zip.ckpt": "a/b/c/d/e/f/data.pkl",
        "dotdot-zip.safetensors": "../../data.pkl",
        "absolute-zip.bin": "/etc/data.pkl",
    }.items():
        files[name] = torch_style_zip(payload, member)
    files["nested-zip.safetensors"] = torch_style_zip(inner_zip, "archive/inner.zip")
    files["prefixed-zip.safetensors"] = b"\x00" * 300 + inner_zip
    files["fake-header-zip.safetensors"] = safetensors_bytes(b'{"x": 1}') + inner_zip
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    return paths


def test_sniff_format_goes_by_bytes_not_extension(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "pickle.safetensors").write_bytes(evil_pickle(marker))
    (tmp_path / "zip.safetensors").write_bytes(torch_style_zip(evil_pickle(marker)))
    (tmp_path / "prefixed.ckpt").write_bytes(b"\x00" * 100 + torch_style_zip(b"x"))
    save_file({"w": np.zeros((2, 2), np.float32)}, str(tmp_path / "real.ckpt"))
    (tmp_path / "text.safetensors").write_text("just some words, not weights")
    assert sniff_format(tmp_path / "pickle.safetensors") == PICKLE
    assert sniff_format(tmp_path / "zip.safetensors") == ZIP
    assert sniff_format(tmp_path / "prefixed.ckpt") == ZIP
    assert sniff_format(tmp_path / "real.ckpt") == SAFETENSORS
    assert sniff_format(tmp_path / "text.safetensors") == UNKNOWN
    assert not marker.exists()


def test_pickles_and_odd_zips_are_refused_and_never_run(tmp_path, monkeypatch):
    import torch

    def no_unpickling(*args, **kwargs):
        raise AssertionError("something tried to unpickle a model file")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "Unpickler", no_unpickling)
    marker = tmp_path / "ran"
    for path in _hostile_files(tmp_path, marker):
        with pytest.raises(ModelFileError) as error:
            check_safetensors(path)
        assert_names(error, path)
        if path.name != "fake-header-zip.safetensors":  # that one sniffs as a broken safetensors
            assert error.value.reason == PICKLE, path.name
            assert "refuses" in str(error.value)
    assert not marker.exists()


def test_pickle_weights_in_a_folder_are_refused(model_copy, tmp_path, offline):
    marker = tmp_path / "ran"
    weights = model_copy / "unet" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    (model_copy / "unet" / "diffusion_pytorch_model.bin").write_bytes(evil_pickle(marker))
    with pytest.raises(ModelFileError) as error:
        check_model_folder(model_copy)
    assert error.value.reason == PICKLE
    assert_names(error, model_copy / "unet" / "diffusion_pytorch_model.bin")
    assert not marker.exists()


def test_a_pickle_renamed_safetensors_in_a_folder_is_refused(model_copy, tmp_path):
    marker = tmp_path / "ran"
    weights = model_copy / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(torch_style_zip(evil_pickle(marker)))
    with pytest.raises(ModelFileError) as error:
        check_model_folder(model_copy)
    assert error.value.reason == PICKLE
    assert_names(error, weights)
    assert not marker.exists()


_UNSAFE_CALLS = re.compile(
    r"weights_only\s*=\s*False|pickle\.loads?\(|Unpickler\(|use_safetensors\s*=\s*False"
)


def test_no_source_file_can_unpickle_a_model():
    """torch.load only ever with weights_only=True; no pickle.load, no weights_only=False."""
    offenders = []
    for source in STUDIO_SOURCE.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        for match in _UNSAFE_CALLS.finditer(text):
            offenders.append(f"{source}: {match.group(0)}")
        for match in re.finditer(r"torch\.load\(", text):
            call = text[match.start() : text.find(")", match.end()) + 1]
            if not re.search(r"weights_only\s*=\s*True", call):
                offenders.append(f"{source}: {call}")
    assert STUDIO_SOURCE.is_dir() and any(STUDIO_SOURCE.rglob("*.py"))
    assert offenders == []


# ---- case 2: truncated and crafted safetensors ---------------------------------


def _valid_tensors() -> dict[str, np.ndarray]:
    return {
        "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
        "conv.bias": np.ones(2, dtype=np.float16),
        "ids": np.arange(5, dtype=np.int64),
        "mask": np.array([True, False, True]),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


@pytest.fixture
def valid_file(tmp_path) -> Path:
    path = tmp_path / "valid.safetensors"
    save_file(_valid_tensors(), str(path), metadata={"format": "pt"})
    return path


def test_valid_safetensors_pass_and_report_shapes(valid_file):
    header = check_safetensors(valid_file)
    assert header["conv.weight"]["shape"] == [2, 3, 2, 2]
    assert header["empty"]["shape"] == [0, 4]
    assert set(header) == set(_valid_tensors())


def _f32(shape, begin):
    size = int(np.prod(shape)) * 4
    return {"dtype": "F32", "shape": list(shape), "data_offsets": [begin, begin + size]}


def _crafted() -> dict[str, bytes]:
    data = bytes(32)
    two = {"a": _f32([4], 0), "b": _f32([4], 16)}
    header = json.dumps(two).encode()
    return {
        "length beyond file": safetensors_bytes(two, data, length=10_000),
        "huge length": safetensors_bytes(two, data, length=2**62),
        "max length": safetensors_bytes(two, data, length=2**64 - 1),
        "length cuts json": safetensors_bytes(header, data, length=len(header) - 5),
        "overlapping offsets": safetensors_bytes({"a": _f32([4], 0), "b": _f32([4], 8)}, data),
        "out of range offsets": safetensors_bytes({"a": _f32([4], 0), "b": _f32([4], 24)}, data),
        "reversed offsets": safetensors_bytes(
            {"a": {"dtype": "F32", "shape": [0], "data_offsets": [16, 0]}}, data
        ),
        "gap between tensors": safetensors_bytes({"a": _f32([2], 0), "b": _f32([4], 16)}, data),
        "trailing bytes": safetensors_bytes({"a": _f32([4], 0)}, data),
        "shape times dtype wrong": safetensors_bytes(
            {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}, "b": _f32([4], 16)}, data
        ),
        "huge shape": safetensors_bytes(
            {"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 32]}}, data
        ),
        "negative dim": safetensors_bytes(
            {"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "b": _f32([4], 16)},
            data,
        ),
        "unknown dtype": safetensors_bytes(
            {
                "a": {"dtype": "PY_OBJECT", "shape": [4], "data_offsets": [0, 16]},
                "b": _f32([4], 16),
            },
            data,
        ),
        "duplicate keys": safetensors_bytes(
            b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},'
            b' "a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]}}',
            data,
        ),
        "duplicate inner keys": safetensors_bytes(
            b'{"a": {"dtype": "F32", "dtype": "F16", "shape": [8], "data_offsets": [0, 32]}}', data
        ),
        "not an object": safetensors_bytes(b"[1, 2, 3]", data),
        "not json": safetensors_bytes(b"{this is not json}", data),
        "not utf-8": safetensors_bytes(b'{"\xff\xfe": 1}', data),
        "nan in header": safetensors_bytes(
            b'{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 32]}}', data
        ),
        "deep nesting": safetensors_bytes(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", data),
        "bad metadata": safetensors_bytes({"__metadata__": {"x": 1}, "a": _f32([8], 0)}, data),
    }


@pytest.mark.parametrize("name", list(_crafted()))
def test_crafted_headers_are_corrupt(tmp_path, name):
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(_crafted()[name])
    with pytest.raises(ModelFileError) as error:
        check_safetensors(path)
    assert error.value.reason == "corrupt"
    assert CORRUPT in str(error.value)
    assert_names(error, path)


@pytest.mark.parametrize("name", list(_crafted()))
def test_reference_reader_also_rejects_crafted_headers(tmp_path, name):
    """Our checks are no looser than the safetensors library's own."""
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(_crafted()[name])
    with pytest.raises(Exception), safe_open(str(path), "np") as handle:  # noqa: B017
        for key in handle.keys():  # noqa: SIM118
            handle.get_tensor(key)


@pytest.mark.parametrize("keep", [0.5, "8 bytes", "0 bytes", "half header"])
def test_truncated_files_are_corrupt(valid_file, keep):
    data = valid_file.read_bytes()
    header_len = struct.unpack("<Q", data[:8])[0]
    cut = {0.5: len(data) // 2, "8 bytes": 8, "0 bytes": 0, "half header": 8 + header_len // 2}[
        keep
    ]
    valid_file.write_bytes(data[:cut])
    with pytest.raises(ModelFileError) as error:
        check_safetensors(valid_file)
    assert CORRUPT in str(error.value)
    assert_names(error, valid_file)


def assert_refused_without_allocating(path: Path) -> None:
    """``check_safetensors`` refuses ``path`` as corrupt while allocating under 1 MiB."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=CORRUPT):
            check_safetensors(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


@pytest.mark.parametrize("claimed", [2**62, 99 * 1024 * 1024, 2**64 - 1])
def test_a_huge_claimed_header_allocates_nothing(tmp_path, claimed):
    path = tmp_path / "liar.safetensors"
    path.write_bytes(safetensors_bytes(b'{"a": 1}' + b" " * 200, length=claimed))
    assert_refused_without_allocating(path)


def test_a_huge_claimed_tensor_allocates_nothing(tmp_path):
    path = tmp_path / "liar.safetensors"
    path.write_bytes(
        safetensors_bytes(
            {"a": {"dtype": "F64", "shape": [2**31, 2**31], "data_offsets": [0, 8]}}, bytes(8)
        )
    )
    assert_refused_without_allocating(path)


def test_corrupt_weights_inside_a_folder_name_the_file(model_copy):
    weights = model_copy / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelFileError) as error:
        check_model_folder(model_copy)
    assert CORRUPT in str(error.value)
    assert_names(error, weights)


def test_corrupt_config_names_the_file(model_copy):
    config = model_copy / "unet" / "config.json"
    config.write_text('{"in_channels": 4, "in_channels": 9}')
    with pytest.raises(ModelFileError) as error:
        check_model_folder(model_copy)
    assert CORRUPT in str(error.value)
    assert_names(error, config)


def test_a_shard_index_cannot_point_outside_its_folder(model_copy, tmp_path):
    unet = model_copy / "unet"
    outside = tmp_path / "outside.safetensors"
    shutil.move(unet / "diffusion_pytorch_model.safetensors", outside)
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"conv_in.weight": "../../outside.safetensors"}})
    )
    with pytest.raises(ModelFileError, match=CORRUPT) as error:
        check_model_folder(model_copy)
    assert_names(error, unet / "diffusion_pytorch_model.safetensors.index.json")


# ---- case 3: valid weights, wrong family or configuration ----------------------


def test_the_tiny_folder_itself_is_compatible(sd_folder, offline):
    check_model_folder(sd_folder)


def test_wider_text_encoder_weights_with_a_narrower_config(model_copy, wide_sd_folder):
    shutil.copy(
        wide_sd_folder / "text_encoder" / "model.safetensors",
        model_copy / "text_encoder" / "model.safetensors",
    )
    check_diffusers_folder(model_copy)  # every file is present and sound ...
    with pytest.raises(ModelFileError, match="incompatible model") as error:
        check_compatibility(model_copy)  # ... but the shapes are not what the config says
    assert "hidden size 24" in str(error.value)
    assert error.value.reason == "incompatible"
    assert_names(error, model_copy)


def test_a_whole_wider_text_encoder_does_not_fit_the_unet(model_copy, wide_sd_folder):
    shutil.rmtree(model_copy / "text_encoder")
    shutil.copytree(wide_sd_folder / "text_encoder", model_copy / "text_encoder")
    with pytest.raises(ModelFileError, match="incompatible model") as error:
        check_model_folder(model_copy)
    assert "width 16" in str(error.value) and "24" in str(error.value)


def test_an_inpainting_unet_is_accepted_and_another_channel_count_refused(
    inpainting_folder, tmp_path, offline
):
    check_model_folder(inpainting_folder)  # 4 + 1 + 4: a true inpainting UNet
    odd = Path(shutil.copytree(inpainting_folder, tmp_path / "odd"))
    rebuild_unet(odd, in_channels=8)
    with pytest.raises(ModelFileError, match="incompatible model") as error:
        check_model_folder(odd)
    assert "8 in / 4 out channels" in str(error.value)
    assert_names(error, odd)


def test_unet_config_disagreeing_with_its_weights(model_copy):
    config_path = model_copy / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["in_channels"] = 9
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=r"incompatible model.*4 input channels"):
        check_model_folder(model_copy)


def test_a_tokenizer_larger_than_the_embedding(model_copy):
    vocab_path = model_copy / "tokenizer" / "vocab.json"
    vocab = json.loads(vocab_path.read_text())
    vocab["extra</w>"] = 5000
    vocab_path.write_text(json.dumps(vocab))
    with pytest.raises(ModelFileError, match=r"incompatible model.*token id 5000"):
        check_model_folder(model_copy)


# ---- case 4: missing parts, offline ----------------------------------------------


@pytest.mark.parametrize(
    ("remove", "expected"),
    [
        (["vae"], ["vae/"]),
        (["unet/config.json"], ["unet/config.json"]),
        (["text_encoder/model.safetensors"], ["text_encoder/model.safetensors"]),
        (["scheduler/scheduler_config.json"], ["scheduler/scheduler_config.json"]),
        (["tokenizer/merges.txt"], ["tokenizer/merges.txt"]),
        (["model_index.json"], ["model_index.json"]),
        (
            ["vae/config.json", "unet/diffusion_pytorch_model.safetensors", "tokenizer"],
            ["vae/config.json", "unet/diffusion_pytorch_model.safetensors", "tokenizer/"],
        ),
    ],
)
def test_a_missing_part_is_named_exactly(model_copy, offline, remove, expected):
    for relative in remove:
        target = model_copy / relative
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ModelFileError) as error:
        check_model_folder(model_copy)
    assert error.value.reason == "missing"
    assert_names(error, model_copy)
    listed = str(error.value).split(" is missing ", 1)[1].removesuffix(".")
    listed = listed.split(", so it is not")[0]
    assert set(re.split(r", | and ", listed)) == set(expected)


def test_a_missing_folder_is_named(tmp_path, offline):
    with pytest.raises(ModelFileError, match="does not exist") as error:
        check_model_folder(tmp_path / "nowhere")
    assert_names(error, tmp_path / "nowhere")


def test_a_component_listed_as_none_is_missing(model_copy, offline):
    index_path = model_copy / "model_index.json"
    index = json.loads(index_path.read_text())
    index["vae"] = [None, None]
    index_path.write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match=r"vae \(model_index.json lists none\)"):
        check_model_folder(model_copy)


def test_the_socket_guard_is_armed(offline):
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.create_connection(("huggingface.co", 443))


def test_zip_member_names_are_not_extracted(tmp_path):
    """Refusal happens on the first bytes: no member of an odd zip is ever written out."""
    path = tmp_path / "escape.safetensors"
    path.write_bytes(torch_style_zip(b"payload", "../escaped.txt"))
    with pytest.raises(ModelFileError):
        check_safetensors(path)
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert zipfile.is_zipfile(path)


# ---- the loader refuses all of it, and the model loaded before keeps working ----


def _pickle_unet(folder: Path, marker: Path) -> Path:
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(evil_pickle(marker))
    return folder / "unet" / "diffusion_pytorch_model.bin"


def _zip_as_safetensors(folder: Path, marker: Path) -> Path:
    weights = folder / "text_encoder" / "model.safetensors"
    weights.write_bytes(torch_style_zip(evil_pickle(marker), "x/y/data.pkl"))
    return weights


def _truncated_vae(folder: Path, marker: Path) -> Path:
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return weights


def _lying_header(folder: Path, marker: Path) -> Path:
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[:8] = struct.pack("<Q", 2**62)
    weights.write_bytes(bytes(data))
    return weights


def _missing_vae_config(folder: Path, marker: Path) -> Path:
    (folder / "vae" / "config.json").unlink()
    return folder


def _missing_tokenizer(folder: Path, marker: Path) -> Path:
    shutil.rmtree(folder / "tokenizer")
    return folder


def _wide_text_weights(folder: Path, marker: Path) -> Path:
    rebuild_text_encoder(folder, hidden_size=24)
    config = folder / "text_encoder" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "hidden_size": 16}))
    return folder


def _odd_channel_unet(folder: Path, marker: Path) -> Path:
    rebuild_unet(folder, in_channels=8)  # neither the latent's 4 nor an inpainting 9
    return folder


def _enormous_model_index(folder: Path, marker: Path) -> Path:
    with open(folder / "model_index.json", "r+b") as file:
        file.truncate(2**33)  # sparse: 8 GiB claimed, nothing written
    return folder / "model_index.json"


_DAMAGES = {
    "enormous model_index": (_enormous_model_index, "too large"),
    "pickle unet": (_pickle_unet, "refuses"),
    "zip named safetensors": (_zip_as_safetensors, "refuses"),
    "truncated vae": (_truncated_vae, CORRUPT),
    "header claims 2**62": (_lying_header, CORRUPT),
    "missing vae config": (_missing_vae_config, "missing vae/config.json"),
    "missing tokenizer": (_missing_tokenizer, "missing tokenizer/"),
    "wide text weights": (_wide_text_weights, "incompatible model"),
    "8-channel unet": (_odd_channel_unet, "incompatible model"),
}


@pytest.fixture(scope="module")
def reference_run(tiny_model):
    from studio.engine.recipe import Recipe
    from studio.engine.sampler import Sampler

    recipe = Recipe(prompt="a red car", steps=2, width=16, height=16, seed=7, sampler="Euler")
    return recipe, Sampler(tiny_model), [s.latent.clone() for s in Sampler(tiny_model).run(recipe)]


@pytest.mark.parametrize("damage", list(_DAMAGES))
def test_load_model_refuses_and_the_loaded_model_stays_usable(
    sd_folder, tmp_path, offline, monkeypatch, reference_run, damage
):
    import torch

    from studio.engine.models import load_model

    def no_unpickling(*args, **kwargs):
        raise AssertionError("something tried to unpickle a model file")

    recipe, sampler, reference = reference_run
    folder = Path(shutil.copytree(sd_folder, tmp_path / "model"))
    marker = tmp_path / "ran"
    make, expected = _DAMAGES[damage]
    named = make(folder, marker)
    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(ModelError) as error:
        load_model(str(folder), device="cpu")
    assert expected in str(error.value)
    assert str(named) in str(error.value)
    assert not marker.exists()
    monkeypatch.undo()
    latents = [s.latent for s in sampler.run(recipe)]
    assert len(latents) == len(reference)
    assert all(torch.equal(a, b) for a, b in zip(latents, reference, strict=True))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".safetensors"])
def test_load_model_refuses_a_single_pickle_file(tmp_path, offline, suffix):
    from studio.engine.models import load_model

    marker = tmp_path / "ran"
    path = tmp_path / f"downloaded{suffix}"
    path.write_bytes(evil_pickle(marker))
    with pytest.raises(ModelError) as error:
        load_model(str(path), device="cpu")
    assert str(path) in str(error.value) and "refuses" in str(error.value)
    assert not marker.exists()


def test_load_model_refuses_a_truncated_single_file(tmp_path, offline):
    from studio.engine.models import load_model

    path = tmp_path / "half.safetensors"
    save_file({"w": np.zeros((64, 64), np.float32)}, str(path))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match=CORRUPT) as error:
        load_model(str(path), device="cpu")
    assert str(path) in str(error.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and /dev/zero")
def test_devices_and_fifos_are_not_read(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero"), tmp_path):
        with pytest.raises(ModelFileError, match="not a regular file") as error:
            check_safetensors(path)
        assert_names(error, path)


def test_an_enormous_config_is_refused_without_reading_it(model_copy):
    config = model_copy / "unet" / "config.json"
    with open(config, "r+b") as file:
        file.truncate(2**33)  # sparse: 8 GiB claimed, nothing written
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=CORRUPT) as error:
            check_model_folder(model_copy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_names(error, config)
    assert peak < 16 * 1024 * 1024


# ---- single-file checkpoints -----------------------------------------------------------


def _single_file(path: Path, unet_in: int, text_width: int, family_key: str) -> Path:
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": np.zeros((8, unet_in, 3, 3), np.float16),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": np.zeros(
            (8, text_width), np.float16
        ),
        family_key: np.zeros((4, text_width), np.float16),
    }
    save_file(tensors, str(path))
    return path


SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
SD2_TEXT = "cond_stage_model.model.token_embedding.weight"


def test_single_file_family_and_inpainting(tmp_path):
    from studio.engine.model_files import check_single_file

    assert check_single_file(_single_file(tmp_path / "sd1.safetensors", 4, 768, SD1_TEXT)) == "sd1"
    assert check_single_file(_single_file(tmp_path / "sd2.safetensors", 4, 1024, SD2_TEXT)) == "sd2"
    inpainting = _single_file(tmp_path / "inpaint.safetensors", 9, 768, SD1_TEXT)
    with pytest.raises(ModelFileError, match=r"incompatible model.*inpainting") as error:
        check_single_file(inpainting)
    assert_names(error, inpainting)


@pytest.mark.parametrize(
    ("unet_in", "text_width", "words"),
    [(9, 16, "inpainting"), (4, 1024, "width 1024"), (8, 16, "8 input channels")],
)
def test_load_model_refuses_single_files_that_do_not_fit_their_config(
    tmp_path, sd_folder, offline, unet_in, text_width, words
):
    from studio.engine.models import load_model

    path = _single_file(tmp_path / "model.safetensors", unet_in, text_width, SD2_TEXT)
    with pytest.raises(ModelError, match="incompatible model") as error:
        load_model(str(path), device="cpu", config_dir=str(sd_folder))
    assert words in str(error.value) and str(path) in str(error.value)


def test_sharded_weights_are_checked_shard_by_shard(model_copy):
    from safetensors.numpy import load_file

    unet = model_copy / "unet"
    tensors = load_file(str(unet / "diffusion_pytorch_model.safetensors"))
    (unet / "diffusion_pytorch_model.safetensors").unlink()
    names = sorted(tensors)
    halves = {"part-1.safetensors": names[::2], "part-2.safetensors": names[1::2]}
    for shard, keys in halves.items():
        save_file({k: tensors[k] for k in keys}, str(unet / shard))
    weight_map = {k: shard for shard, keys in halves.items() for k in keys}
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": weight_map})
    )
    check_model_folder(model_copy)
    second = unet / "part-2.safetensors"
    second.write_bytes(second.read_bytes()[:-4])
    with pytest.raises(ModelFileError, match=CORRUPT) as error:
        check_model_folder(model_copy)
    assert_names(error, second)


def test_a_variant_alone_is_the_weights_the_loader_reads_and_is_checked(model_copy):
    from studio.engine.model_files import weight_files

    vae = model_copy / "vae"
    variant = vae / "diffusion_pytorch_model.fp16.safetensors"
    (vae / "diffusion_pytorch_model.safetensors").rename(variant)
    check_model_folder(model_copy)
    assert weight_files(vae, "diffusion_pytorch_model") == [variant]
    variant.write_bytes(variant.read_bytes()[:-4])
    with pytest.raises(ModelFileError, match=CORRUPT) as error:
        check_model_folder(model_copy)
    assert_names(error, variant)
