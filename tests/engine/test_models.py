from __future__ import annotations

import json
import shutil

import pytest
import torch

from studio.engine.errors import ModelError
from studio.engine.models import BUNDLED_PATH, choose_device, list_models, load_model, resolve


def test_tiny_model_loads_with_family_factor_and_policy(tiny_model):
    assert tiny_model.size_factor == 2 and tiny_model.latent_channels == 4
    assert tiny_model.describe() == "CPU float32" and not tiny_model.is_xl
    assert len(tiny_model.model_hash) == 10


def test_xl_shape_loads_as_xl(tiny_xl_model_dir):
    model = load_model(str(tiny_xl_model_dir), device="cpu")
    assert model.is_xl and model.family == "sdxl"


def test_device_policy_and_overrides(monkeypatch):
    monkeypatch.delenv("NOISE_STUDIO_DEVICE", raising=False)
    assert choose_device("cpu").dtype == torch.float32
    assert choose_device("cpu:bf16").dtype == torch.bfloat16
    if not torch.cuda.is_available():
        assert choose_device().device.type in {"cpu", "mps"}
        with pytest.raises(ModelError, match="CUDA"):
            choose_device("cuda")
    with pytest.raises(ModelError):
        choose_device("cpu:fp8")
    monkeypatch.setenv("NOISE_STUDIO_DEVICE", "cpu:fp16")
    assert choose_device().dtype == torch.float16


def test_references_resolve_locally(tmp_path, monkeypatch):
    assert resolve("bundled") == BUNDLED_PATH
    with pytest.raises(ModelError, match="not found"):
        resolve(str(tmp_path / "missing"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError, match="local Hugging Face cache"):
        resolve("hf:someone/model")


def test_hf_cache_snapshots_are_found_and_listed(tiny_model_dir, tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--someone--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve("hf:someone/tiny") == repo / "snapshots" / "abc123"
    refs = [ref for _, ref in list_models([tiny_model_dir.parent])]
    assert refs[0] == "bundled" and "hf:someone/tiny" in refs and str(tiny_model_dir) in refs


def test_single_file_needs_a_local_config(tmp_path, tiny_model_dir):
    weights = next((tiny_model_dir / "unet").glob("*.safetensors"))
    with pytest.raises(ModelError, match="config folder"):
        load_model(str(weights), device="cpu")


def test_unsupported_pipeline_class_is_incompatible(tmp_path, tiny_model_dir):
    folder = tmp_path / "other"
    shutil.copytree(tiny_model_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "SomeCustomPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="Incompatible"):
        load_model(str(folder), device="cpu")


def test_thread_policy_reserves_cores_and_honours_the_override(monkeypatch):
    from studio.engine.models import THREADS_ENV, torch_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert (torch_threads(), torch_threads(reserve=1)) == (8, 7)
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert torch_threads(reserve=1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert torch_threads(reserve=1) == 2
    monkeypatch.setenv(THREADS_ENV, "3")
    assert torch_threads(reserve=1) == 3


def test_the_cli_and_the_window_share_one_thread_count(monkeypatch):
    from studio.engine.models import THREADS_ENV, studio_torch_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert studio_torch_threads() == 7  # one core stays with the window's UI thread
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert studio_torch_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "5")
    assert studio_torch_threads() == 5


def test_the_cli_and_the_window_worker_set_that_count_when_they_load_a_model(monkeypatch):
    """The pixel test in tests/session runs with OMP_NUM_THREADS=1, where any policy gives 1;
    here the overrides are gone, so a loader that picked its own count would differ."""
    import argparse

    from studio import cli
    from studio.engine import models
    from studio.engine.recipe import Recipe
    from studio.workers import local

    class Loaded:
        native_size = 64

    monkeypatch.delenv(models.THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 5)
    monkeypatch.setattr(models, "load_model", lambda *_args, **_kwargs: Loaded())
    monkeypatch.setattr("studio.engine.sampler.Sampler", lambda model: model)
    threads = torch.get_num_threads()
    counts = []
    try:
        for load in (
            lambda: local._default_load_model("bundled"),
            lambda: cli.load_sampler(
                argparse.Namespace(memory_saving="", device="cpu"), Recipe("a fox"), True
            ),
        ):
            torch.set_num_threads(1)
            load()
            counts.append(torch.get_num_threads())
    finally:
        torch.set_num_threads(threads)
    assert counts == [4, 4], "the window's worker, then the CLI"
