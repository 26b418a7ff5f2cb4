"""Scorer plug-ins (issue 16): CLIP score and an aesthetic head from local folders only.

The tiny CLIP and head are random and built here, so a matching caption cannot be
expected to beat a wrong one; instead each score is checked against a hand
computation from the model's own ``get_image_features`` / ``get_text_features``.
Hostile folders are refused before anything is imported; nothing reaches the network.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from studio.engine import plugins as plugins_module
from studio.engine.model_files import ModelFileError
from studio.engine.plugins import (
    CLIP_MEAN,
    CLIP_STD,
    PluginError,
    PluginSpec,
    check_plugins,
    load_plugins,
)
from tests.engine.hostile_inputs import evil_pickle
from tests.tiny_models import build_tiny_aesthetic_head

PROMPTS = ("a red car", "a blue house at night", "cat", "", "x" * 200)


@pytest.fixture
def clip_dir(tiny_clip_dir) -> Path:
    return tiny_clip_dir


@pytest.fixture
def head_dir(tiny_aesthetic_dir) -> Path:
    return tiny_aesthetic_dir


@pytest.fixture
def clip_copy(clip_dir, tmp_path) -> Path:
    return Path(shutil.copytree(clip_dir, tmp_path / "clip"))


@pytest.fixture
def no_network(monkeypatch):
    """Any socket or Hub download fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network or Hub access attempted: {args[:2]}")

    import huggingface_hub
    import transformers.utils.hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    for target in (socket.socket, socket):
        for name in ("connect", "connect_ex", "create_connection", "getaddrinfo"):
            if hasattr(target, name):
                monkeypatch.setattr(target, name, refuse)
    for module in (huggingface_hub, huggingface_hub.file_download, transformers.utils.hub):
        for name in ("hf_hub_download", "snapshot_download"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)


def _image(seed: int, height: int = 32, width: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _reference(clip_dir: Path):
    from transformers import CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(clip_dir, local_files_only=True, use_safetensors=True)
    return model.eval(), CLIPTokenizer.from_pretrained(clip_dir, local_files_only=True)


def _tensor(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _hand_image_features(model, image: np.ndarray) -> torch.Tensor:
    """A 32-pixel image needs no resize or crop: only CLIP's normalisation."""
    pixels = (image.astype(np.float32) / 255.0 - np.array(CLIP_MEAN, np.float32)) / np.array(
        CLIP_STD, np.float32
    )
    with torch.no_grad():
        return _tensor(
            model.get_image_features(pixel_values=torch.from_numpy(pixels.transpose(2, 0, 1))[None])
        )


def _hand_text_features(model, tokenizer, text: str) -> torch.Tensor:
    tokens = tokenizer(
        [text], padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        return _tensor(
            model.get_text_features(
                input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
            )
        )


# ---- the scores ------------------------------------------------------------------------


def test_clip_score_is_100_cosine_of_the_models_own_features(clip_dir, no_network):
    [plugin] = load_plugins([PluginSpec.parse(f"clip={clip_dir}")])
    assert plugin.name == "clip" and plugin.higher_is_better and plugin.description
    model, tokenizer = _reference(clip_dir)
    images = [_image(seed) for seed in range(4)]
    expected, got = [], []
    for prompt in PROMPTS:
        text = _hand_text_features(model, tokenizer, prompt)
        for image in images:
            cosine = torch.nn.functional.cosine_similarity(
                _hand_image_features(model, image), text
            ).item()
            expected.append(max(100.0 * cosine, 0.0))
        got += plugin.score(images, prompt)
    assert got == pytest.approx(expected, abs=1e-4)
    assert any(v > 1.0 for v in expected) and any(v == 0.0 for v in expected), (
        "the fixed tiny CLIP should give both kept and clipped cosines"
    )


def test_clip_score_is_deterministic_and_independent_of_its_batch(clip_dir):
    [plugin] = load_plugins([PluginSpec("clip", str(clip_dir))])
    images = [_image(seed) for seed in range(10)]  # more than one CLIP batch
    prompt = next(p for p in PROMPTS if plugin.score(images[:1], p)[0] > 0)
    alone = plugin.score(images[:1], prompt)
    assert plugin.score(images[:1], prompt) == alone
    assert plugin.score(images, prompt)[0] == pytest.approx(alone[0], abs=1e-5)
    [reloaded] = load_plugins([PluginSpec("clip", str(clip_dir))])
    assert reloaded.score(images[:1], prompt) == alone


def test_clip_preprocessing_takes_the_centre_of_a_wide_image(clip_dir):
    [plugin] = load_plugins([PluginSpec("clip", str(clip_dir))])
    wide = _image(5, 32, 56)
    centre = np.ascontiguousarray(wide[:, 12:44])
    for prompt in PROMPTS[:3]:
        assert plugin.score([wide], prompt) == pytest.approx(
            plugin.score([centre], prompt), abs=1e-4
        )


def test_aesthetic_head_is_the_mlp_on_the_normalised_clip_embedding(clip_dir, head_dir, no_network):
    spec = PluginSpec.parse(f"aesthetic={head_dir},clip={clip_dir}")
    [plugin] = load_plugins([spec])
    assert plugin.name == "aesthetic" and plugin.higher_is_better
    from safetensors.torch import load_file

    weights = load_file(str(head_dir / "model.safetensors"))
    model, _tokenizer = _reference(clip_dir)
    images = [_image(seed) for seed in range(3)]
    expected = []
    for image in images:
        x = torch.nn.functional.normalize(_hand_image_features(model, image), dim=-1)
        for i in range(3):
            x = x @ weights[f"layers.{i}.weight"].T + weights[f"layers.{i}.bias"]
            if i < 2:
                x = torch.relu(x)
        expected.append(x.item())
    got = plugin.score(images, "the prompt is not used")
    assert got == pytest.approx(expected, abs=1e-4)
    assert plugin.score(images, "") == got
    assert len(set(got)) == 3


def test_both_plugins_share_one_clip_and_keep_their_order(clip_dir, head_dir):
    loaded = load_plugins(
        [
            PluginSpec("aesthetic", str(head_dir), str(clip_dir)),
            PluginSpec("clip", str(clip_dir)),
        ]
    )
    assert [p.name for p in loaded] == ["aesthetic", "clip"]
    assert loaded[0].embedder is loaded[1].embedder


# ---- naming plug-ins -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        ("clip", "KIND=FOLDER"),
        ("vibes=/x", "no scorer plug-in 'vibes'"),
        ("aesthetic=/head", "name the CLIP folder too"),
        ("aesthetic=/head,size=3", "no option 'size'"),
        ("clip=", "KIND=FOLDER"),
    ],
)
def test_a_badly_named_plugin_is_one_sentence(text, words):
    with pytest.raises(PluginError) as error:
        PluginSpec.parse(text)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_a_plugin_named_twice_is_refused(clip_dir):
    with pytest.raises(PluginError, match="named twice"):
        check_plugins([PluginSpec("clip", str(clip_dir))] * 2)


# ---- hostile and broken folders ------------------------------------------------------------

MARKER_MODULE = "noise_plugin_marker"


def _edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _pickle_only(folder: Path, marker: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(evil_pickle(marker))


def _remote_code(folder: Path, marker: Path) -> None:
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    _edit_json(folder / "config.json", auto_map={"AutoModel": "evil.Evil"})


def _remote_tokenizer(folder: Path, marker: Path) -> None:
    _edit_json(
        folder / "tokenizer_config.json",
        auto_map={"AutoTokenizer": [f"{MARKER_MODULE}.X", None]},
    )


_HOSTILE = {
    "pickle weights only": (_pickle_only, "pickle"),
    "remote code (auto_map)": (_remote_code, "auto_map"),
    "remote tokenizer (auto_map)": (_remote_tokenizer, "auto_map"),
    "another architecture": (
        lambda f, m: _edit_json(f / "config.json", architectures=[f"{MARKER_MODULE}.X"]),
        "CLIPModel",
    ),
    "another tokenizer class": (
        lambda f, m: _edit_json(f / "tokenizer_config.json", tokenizer_class=MARKER_MODULE),
        "CLIPTokenizer",
    ),
    "a huge vision tower": (
        lambda f, m: _edit_json(
            f / "config.json",
            vision_config={
                **json.loads((f / "config.json").read_text())["vision_config"],
                "hidden_size": 10**9,
            },
        ),
        "hidden_size",
    ),
    "no weights": (lambda f, m: (f / "model.safetensors").unlink(), "missing model.safetensors"),
    "truncated weights": (
        lambda f, m: (f / "model.safetensors").write_bytes(
            (f / "model.safetensors").read_bytes()[:-100]
        ),
        "incomplete or corrupt",
    ),
}


@pytest.mark.parametrize("hostile", list(_HOSTILE))
def test_a_hostile_clip_folder_is_refused_in_one_sentence_importing_nothing(
    clip_copy, tmp_path, monkeypatch, hostile
):
    marker = tmp_path / "ran"
    modules = tmp_path / "site"
    modules.mkdir()
    (modules / f"{MARKER_MODULE}.py").write_text(f"open({str(marker)!r}, 'w').close()\nX = 1\n")
    monkeypatch.syspath_prepend(str(modules))
    make, words = _HOSTILE[hostile]
    make(clip_copy, marker)
    before = set(sys.modules)
    with pytest.raises(ModelFileError) as error:
        load_plugins([PluginSpec("clip", str(clip_copy))])
    assert set(sys.modules) - before == set()
    assert not marker.exists()
    message = str(error.value)
    assert words in message and "\n" not in message and message.endswith(".")


def test_a_hostile_head_is_refused_before_clip_loads(clip_dir, head_dir, tmp_path):
    head = Path(shutil.copytree(head_dir, tmp_path / "head"))
    _edit_json(head / "config.json", hidden_sizes=[8, 5])
    spec = PluginSpec("aesthetic", str(head), str(clip_dir))
    with pytest.raises(ModelFileError, match="do not fit") as error:
        load_plugins([spec])
    assert "\n" not in str(error.value)

    (head / "model.safetensors").unlink()
    (head / "model.pth").write_bytes(evil_pickle(tmp_path / "ran"))
    with pytest.raises(ModelFileError) as error:
        load_plugins([spec])
    assert error.value.reason == "pickle" and not (tmp_path / "ran").exists()

    narrow = build_tiny_aesthetic_head(tmp_path / "narrow", embedding_dim=12)
    with pytest.raises(PluginError, match="12-dimensional"):
        load_plugins([PluginSpec("aesthetic", str(narrow), str(clip_dir))])


def test_every_load_in_the_plugins_is_local_only():
    """Beside the runtime guards above: no Hub download is named, and every
    ``from_pretrained`` call passes ``local_files_only=True`` (and never remote code)."""
    import ast

    source = Path(plugins_module.__file__).read_text()
    for name in ("hf_hub_download", "snapshot_download", "cached_file", "trust_remote_code=True"):
        assert name not in source
    loads = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "from_pretrained"
    ]
    assert len(loads) == 2
    for call in loads:
        keywords = {k.arg: k.value for k in call.keywords}
        assert isinstance(keywords.get("local_files_only"), ast.Constant)
        assert keywords["local_files_only"].value is True
        assert "trust_remote_code" not in keywords or keywords["trust_remote_code"].value is False
