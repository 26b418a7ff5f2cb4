"""Shared fixtures. Qt runs offscreen; models are tiny, random and built in code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny models gain nothing from intra-op threads, and on a shared CPU extra threads
# oversubscribe the cores badly. Subprocesses inherit this, so cross-process exactness
# tests compare runs made with the same thread count.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests never touch the user's real recovery folder or settings.
_SANDBOX = tempfile.mkdtemp(prefix="noise-studio-tests-")
os.environ.setdefault("NOISE_STUDIO_RECOVERY_DIR", os.path.join(_SANDBOX, "recovery"))
os.environ.setdefault("XDG_CONFIG_HOME", os.path.join(_SANDBOX, "config"))
os.environ.setdefault("NOISE_STUDIO_CACHE_DIR", os.path.join(_SANDBOX, "cache"))

from tests.tiny_models import (  # noqa: E402
    build_tiny_aesthetic_head,
    build_tiny_clip,
    build_tiny_pipeline,
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD-shaped diffusers folder (VAE factor 2, 4 latent channels)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_xl_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SDXL-shaped diffusers folder (two text encoders, text_time conditioning)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-xl"), xl=True)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIPModel folder (transformers layout) for the scorer plug-ins."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip")


@pytest.fixture(scope="session")
def tiny_aesthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random aesthetic head (embedding 16, as the tiny CLIP gives)."""
    return build_tiny_aesthetic_head(tmp_path_factory.mktemp("tiny-head") / "head")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from studio.engine.models import load_model

    return load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_sampler(tiny_model):
    from studio.engine.sampler import Sampler

    return Sampler(tiny_model)
