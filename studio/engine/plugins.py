"""Optional scorer plug-ins, from weights the user already has on disk: CLIP score and an
aesthetic predictor.

The studio's own scores (:mod:`studio.engine.scoring`) need nothing but the diffusion
model. A plug-in adds one more number per image when the user names a local folder;
none is ever required, and none is ever downloaded. Every plug-in has the same shape
(:class:`ScorePlugin`): a ``name`` (its column), a one-line ``description``, a direction
(``higher_is_better``) and ``score(images, prompt)`` → one float per image.

- **clip** (:class:`ClipScore`): a CLIP folder in the transformers layout
  (``config.json`` of a ``CLIPModel``, ``model.safetensors``, the tokenizer's
  ``vocab.json`` and ``merges.txt``, optionally ``preprocessor_config.json``). The
  score is CLIPScore as torchmetrics computes it: ``max(100 · cos(image, text), 0)``
  between the projected image and text embeddings.
- **aesthetic** (:class:`AestheticScore`): a small MLP head on the CLIP image embedding,
  built as the LAION aesthetic predictor is (linear layers on the L2-normalised
  embedding). Its folder holds ``config.json`` (``{"embedding_dim": 768,
  "hidden_sizes": [1024, 128, 64, 16], "activation": "none", "normalize": true}``)
  and ``model.safetensors`` with ``layers.{i}.weight`` / ``layers.{i}.bias`` for the
  i-th linear layer in order (the last gives one value); it reads the image embedding
  of the CLIP folder named beside it. The prompt is not used.

Safety, as for model folders (:mod:`studio.engine.model_files`): every folder is checked
byte by byte before any library reads it (files sized, safetensors headers validated,
pickle weights refused, no ``auto_map`` remote code, config classes allow-listed and
sizes bounded), and loading passes ``local_files_only=True``, ``use_safetensors=True``
and ``trust_remote_code=False``. A folder that fails raises ``ModelFileError`` or
``PluginError`` with one sentence.

Threading: a loaded plug-in belongs to the thread that owns torch, like the Scorer.
This module imports torch and transformers only when a plug-in is loaded.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.engine.errors import EngineError
from studio.engine.model_files import (
    MAX_VOCAB_FILE_BYTES,
    PICKLE_SUFFIXES,
    ModelFileError,
    check_component_folder,
    check_config_bounds,
    check_safetensors,
    read_json_object,
    refuse_unsafe_format,
    weight_files,
)

PLUGIN_KINDS = ("clip", "aesthetic")
BATCH = 8
"""Images embedded per CLIP forward pass."""

# CLIP's own preprocessing constants (OpenAI CLIP), used when the folder has no
# preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_CLIP_FAMILY = "CLIP models"
_CLIP_BOUNDS = {"projection_dim": (1, 1280)}
_CLIP_TEXT_BOUNDS = {
    "hidden_size": (1, 1280),
    "intermediate_size": (1, 5120),
    "num_hidden_layers": (1, 32),
    "num_attention_heads": (1, 20),
    "max_position_embeddings": (1, 512),
    "vocab_size": (1, 65_536),
    "projection_dim": (1, 1280),
}
_CLIP_VISION_BOUNDS = {
    "hidden_size": (1, 1664),
    "intermediate_size": (1, 8192),
    "num_hidden_layers": (1, 48),
    "num_attention_heads": (1, 16),
    "image_size": (1, 1024),
    "patch_size": (1, 64),
    "projection_dim": (1, 1280),
}
_CLIP_TOKENIZERS = frozenset({"CLIPTokenizer", "CLIPTokenizerFast"})
_HEAD_ACTIVATIONS = ("none", "relu", "gelu")
MAX_HEAD_LAYERS = 8
MAX_HEAD_WIDTH = 8192


class PluginError(EngineError):
    """A plug-in that cannot be named or used; the message is one sentence for the user."""


@dataclass(frozen=True)
class PluginSpec:
    """Which plug-in to load and from where: ``kind`` (one of :data:`PLUGIN_KINDS`),
    ``folder`` (its weights) and, for ``aesthetic``, ``clip`` (the CLIP folder whose
    image embedding the head reads). Plain strings, so it crosses to the worker."""

    kind: str
    folder: str
    clip: str = ""

    @classmethod
    def parse(cls, text: str) -> PluginSpec:
        """``clip=/path/to/clip`` or ``aesthetic=/path/to/head,clip=/path/to/clip``."""
        parts = [part.partition("=") for part in text.split(",")]
        if not parts or any(not sep or not value.strip() for _key, sep, value in parts):
            raise PluginError(
                f"A plug-in is named as KIND=FOLDER (for example clip=/path/to/clip), not {text!r}."
            )
        kind, _sep, folder = parts[0]
        options = {key.strip(): value.strip() for key, _sep, value in parts[1:]}
        unknown = sorted(set(options) - {"clip"})
        if unknown:
            raise PluginError(f"The plug-in {kind!r} takes no option {unknown[0]!r}.")
        spec = cls(kind.strip(), folder.strip(), options.get("clip", ""))
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.kind not in PLUGIN_KINDS:
            raise PluginError(
                f"There is no scorer plug-in {self.kind!r}; the plug-ins are {', '.join(PLUGIN_KINDS)}."
            )
        if self.kind == "aesthetic" and not self.clip:
            raise PluginError(
                "The aesthetic plug-in reads a CLIP image embedding, so name the CLIP folder too "
                "(aesthetic=/path/to/head,clip=/path/to/clip)."
            )
        if self.kind == "clip" and self.clip:
            raise PluginError("The clip plug-in takes its CLIP folder as clip=/path, once.")


def plugin_setting(spec: PluginSpec) -> str:
    """What produced a plug-in's values, stored beside them: its kind, its folder's name
    and the first 12 hex digits of the sha256 of its ``config.json`` (and of the CLIP
    folder's, for a head), e.g. ``clip clip-vit-l 3fa2c1d09b7e``. Reads two small files;
    a config that cannot be read hashes as ``?``."""

    def config_hash(folder: str) -> str:
        try:
            path = Path(folder) / "config.json"
            if path.stat().st_size > MAX_CONFIG_HASH_BYTES:
                return "?"
            return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        except OSError:
            return "?"

    parts = [spec.kind, Path(spec.folder).name, config_hash(spec.folder)]
    if spec.clip:
        parts += ["clip", Path(spec.clip).name, config_hash(spec.clip)]
    return " ".join(parts)


MAX_CONFIG_HASH_BYTES = 1 << 20


class ScorePlugin(ABC):
    """One extra score per image: ``name`` is its column, ``description`` one line saying
    what it measures, and ``higher_is_better`` its direction."""

    name: str
    description: str
    higher_is_better: bool = True

    @abstractmethod
    def score(self, images: Sequence[np.ndarray], prompt: str) -> list[float]:
        """One float per uint8 H×W×3 image, in order."""


# ---- CLIP -------------------------------------------------------------------------


def check_clip_folder(path: str | Path) -> dict[str, Any]:
    """Every check a CLIP folder must pass before transformers opens it; returns its config.

    Reads only JSON and safetensors headers (:mod:`studio.engine.model_files`)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelFileError(f"The CLIP folder {folder} does not exist.", folder, "missing")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelFileError(
            f"The CLIP folder {folder} has no config.json, so it is not a transformers CLIP model.",
            folder,
            "missing",
        )
    check_component_folder(folder, _CLIP_BOUNDS)
    config = read_json_object(config_path)
    architectures = config.get("architectures", ["CLIPModel"])
    if config.get("model_type") != "clip" or architectures != ["CLIPModel"]:
        raise ModelFileError(
            f"{config_path} does not describe a CLIPModel (model_type 'clip'), which is the only "
            "class the CLIP plug-in loads.",
            config_path,
            "incompatible",
        )
    for key, bounds in (("text_config", _CLIP_TEXT_BOUNDS), ("vision_config", _CLIP_VISION_BOUNDS)):
        sub = config.get(key, {})
        if not isinstance(sub, dict):
            raise ModelFileError(f"{config_path} has an odd {key}.", config_path, "incompatible")
        check_config_bounds(config_path, sub, bounds, _CLIP_FAMILY)
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        tokenizer_class = read_json_object(tokenizer_config).get("tokenizer_class", "CLIPTokenizer")
        if tokenizer_class not in _CLIP_TOKENIZERS:
            raise ModelFileError(
                f"{tokenizer_config} names the tokenizer {str(tokenizer_class)[:40]!r}, but the "
                "CLIP plug-in loads only CLIPTokenizer.",
                tokenizer_config,
                "incompatible",
            )
    lacking = [name for name in ("vocab.json", "merges.txt") if not (folder / name).is_file()]
    weights = _safetensors_weights(folder)
    if not weights:
        lacking.append("model.safetensors")
    if lacking:
        raise ModelFileError(
            f"The CLIP folder {folder} is missing {' and '.join(lacking)}.", folder, "missing"
        )
    for file in weights:
        check_safetensors(file)
    vocab = read_json_object(folder / "vocab.json", MAX_VOCAB_FILE_BYTES)
    ids = [v for v in vocab.values() if isinstance(v, int) and not isinstance(v, bool)]
    rows = config.get("text_config", {}).get("vocab_size", 49408)
    if ids and isinstance(rows, int) and max(ids) >= rows:
        raise ModelFileError(
            f"The CLIP folder {folder} has a tokenizer with token id {max(ids)} but a text model "
            f"with only {rows} token embeddings.",
            folder,
            "incompatible",
        )
    return config


def _safetensors_weights(folder: Path) -> list[Path]:
    """The folder's ``model.safetensors`` (or shards); with none, any pickle weights there
    (``pytorch_model.bin``, say) are refused by name rather than reported missing."""
    weights = weight_files(folder, "model")
    if not weights:
        for entry in sorted(folder.iterdir()):
            if entry.suffix.lower() in PICKLE_SUFFIXES and entry.is_file():
                refuse_unsafe_format(entry)
                raise ModelFileError(
                    f"The model file {entry} is pickle-based weights, which Noise Studio never "
                    "loads; use a .safetensors file.",
                    entry,
                    "pickle",
                )
    return weights


class ClipEmbedder:
    """A checked, loaded CLIPModel with its tokenizer and preprocessing: projected image and
    text embeddings. Preprocessing is written out (resize the short side, centre crop,
    normalise) so that no image-processor class, and no torchvision, is needed."""

    def __init__(self, path: str | Path, device: Any = "cpu") -> None:
        folder = Path(path)
        check_clip_folder(folder)
        self.folder = folder
        preprocessing = self._preprocessing(folder)
        import torch
        from transformers import CLIPModel, CLIPTokenizer

        try:
            model, info = CLIPModel.from_pretrained(
                folder,
                local_files_only=True,
                use_safetensors=True,
                trust_remote_code=False,
                torch_dtype=torch.float32,
                output_loading_info=True,
            )
            tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PluginError(f"The CLIP model in {folder} could not be loaded: {first}") from None
        missing = sorted(info.get("missing_keys") or ())
        if missing:
            raise PluginError(
                f"The weights in {folder} lack {len(missing)} of the tensors its config requires "
                f"(e.g. {missing[0]}), so the CLIP model is refused rather than filled with random values."
            )
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.side, self.mean, self.std = preprocessing
        self.embedding_dim = int(model.config.projection_dim)
        self.max_tokens = min(
            int(tokenizer.model_max_length), int(model.config.text_config.max_position_embeddings)
        )

    def _preprocessing(self, folder: Path) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
        config = read_json_object(folder / "config.json")
        side = int(config.get("vision_config", {}).get("image_size", 224))
        mean, std = CLIP_MEAN, CLIP_STD
        path = folder / "preprocessor_config.json"
        if path.is_file():
            pre = read_json_object(path)
            mean = _three_numbers(pre.get("image_mean", mean), path, "image_mean")
            std = _three_numbers(pre.get("image_std", std), path, "image_std")
            if any(s <= 0 for s in std):
                raise ModelFileError(f"{path} has a non-positive image_std.", path, "incompatible")
        return side, mean, std

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """One image as CLIP's input: float32 3×side×side, normalised."""
        from PIL import Image

        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
            raise PluginError("An image to score must be 8-bit RGB.")
        picture = Image.fromarray(np.ascontiguousarray(image[..., :3]))
        scale = self.side / min(picture.size)
        size = (
            max(self.side, round(picture.width * scale)),
            max(self.side, round(picture.height * scale)),
        )
        picture = picture.resize(size, Image.Resampling.BICUBIC)
        left, top = (picture.width - self.side) // 2, (picture.height - self.side) // 2
        picture = picture.crop((left, top, left + self.side, top + self.side))
        array = np.asarray(picture, dtype=np.float32) / 255.0
        array = (array - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)
        return array.transpose(2, 0, 1)

    def image_embeddings(self, images: Sequence[np.ndarray]) -> Any:
        """Projected image embeddings, (len(images), embedding_dim), float32 on the CPU."""
        import torch

        rows = []
        with torch.no_grad():
            for start in range(0, len(images), BATCH):
                batch = np.stack([self.pixels(image) for image in images[start : start + BATCH]])
                pixels = torch.from_numpy(batch).to(self.device)
                rows.append(_features(self.model.get_image_features(pixel_values=pixels)))
        return torch.cat(rows).float().cpu()

    def text_embedding(self, text: str) -> Any:
        """The projected text embedding of ``text``, (1, embedding_dim), float32 on the CPU."""
        import torch

        tokens = self.tokenizer(
            [text],
            padding="max_length",
            max_length=self.max_tokens,
            truncation=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            features = self.model.get_text_features(
                input_ids=tokens.input_ids.to(self.device),
                attention_mask=tokens.attention_mask.to(self.device),
            )
        return _features(features).float().cpu()


def _features(output: Any) -> Any:
    """transformers 4 returns the projected features; 5 returns them as ``pooler_output``."""
    return output if hasattr(output, "ndim") else output.pooler_output


def _three_numbers(value: Any, path: Path, key: str) -> tuple[float, ...]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in value)
    ):
        raise ModelFileError(f"{path} has an odd {key} (three numbers expected).", path, "corrupt")
    return tuple(float(v) for v in value)


class ClipScore(ScorePlugin):
    """CLIPScore: ``max(100 · cos(image embedding, text embedding), 0)``, from a local CLIP."""

    name = "clip"
    description = "CLIP score: 100 × cosine between the image's and the prompt's CLIP embeddings"

    def __init__(self, embedder: ClipEmbedder) -> None:
        self.embedder = embedder

    def score(self, images: Sequence[np.ndarray], prompt: str) -> list[float]:
        import torch

        if not images:
            return []
        image = torch.nn.functional.normalize(self.embedder.image_embeddings(images), dim=-1)
        text = torch.nn.functional.normalize(self.embedder.text_embedding(prompt), dim=-1)
        cosine = (image @ text.T)[:, 0].double()
        return [max(100.0 * float(c), 0.0) for c in cosine]


# ---- aesthetic head ----------------------------------------------------------------


@dataclass(frozen=True)
class AestheticHeadConfig:
    """The head's shape: ``embedding_dim`` in, ``hidden_sizes`` then one value out."""

    embedding_dim: int
    hidden_sizes: tuple[int, ...]
    activation: str = "none"
    normalize: bool = True

    @property
    def widths(self) -> list[int]:
        return [self.embedding_dim, *self.hidden_sizes, 1]


def check_aesthetic_folder(path: str | Path) -> AestheticHeadConfig:
    """The head folder's checks (config, then the safetensors header against it); its config."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelFileError(
            f"The aesthetic head folder {folder} does not exist.", folder, "missing"
        )
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelFileError(
            f"The aesthetic head folder {folder} has no config.json.", folder, "missing"
        )
    check_component_folder(folder, {})
    raw = read_json_object(config_path)

    def odd(detail: str) -> ModelFileError:
        return ModelFileError(
            f"{config_path} is not an aesthetic head config: {detail}.", config_path, "incompatible"
        )

    dim, hidden = raw.get("embedding_dim"), raw.get("hidden_sizes", [])
    if not _width(dim):
        raise odd(f"embedding_dim must be a whole number from 1 to {MAX_HEAD_WIDTH}")
    if (
        not isinstance(hidden, list)
        or len(hidden) >= MAX_HEAD_LAYERS
        or not all(map(_width, hidden))
    ):
        raise odd(
            f"hidden_sizes must list fewer than {MAX_HEAD_LAYERS} whole numbers from 1 to {MAX_HEAD_WIDTH}"
        )
    activation, normalize = raw.get("activation", "none"), raw.get("normalize", True)
    if activation not in _HEAD_ACTIVATIONS:
        raise odd(f"activation must be one of {', '.join(_HEAD_ACTIVATIONS)}")
    if not isinstance(normalize, bool):
        raise odd("normalize must be true or false")
    config = AestheticHeadConfig(int(dim), tuple(int(h) for h in hidden), activation, normalize)

    weights = _safetensors_weights(folder)
    if len(weights) != 1:
        raise ModelFileError(
            f"The aesthetic head folder {folder} is missing model.safetensors.", folder, "missing"
        )
    header = check_safetensors(weights[0])
    widths = config.widths
    expected = {}
    for i in range(len(widths) - 1):
        expected[f"layers.{i}.weight"] = [widths[i + 1], widths[i]]
        expected[f"layers.{i}.bias"] = [widths[i + 1]]
    found = {key: entry["shape"] for key, entry in header.items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or sorted(
            k for k in expected if found[k] != expected[k]
        )
        raise ModelFileError(
            f"The weights in {weights[0]} do not fit {config_path} (first at {wrong[0]}).",
            weights[0],
            "incompatible",
        )
    return config


def _width(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_HEAD_WIDTH


class AestheticScore(ScorePlugin):
    """A LAION-style aesthetic predictor: an MLP head on the (normalised) CLIP image embedding."""

    name = "aesthetic"
    description = "aesthetic predictor: an MLP on the CLIP image embedding (higher looks better)"

    def __init__(self, path: str | Path, embedder: ClipEmbedder) -> None:
        folder = Path(path)
        self.config = check_aesthetic_folder(folder)
        if self.config.embedding_dim != embedder.embedding_dim:
            raise PluginError(
                f"The aesthetic head in {folder} reads {self.config.embedding_dim}-dimensional "
                f"embeddings but the CLIP model in {embedder.folder} gives {embedder.embedding_dim}."
            )
        from safetensors.torch import load_file

        tensors = load_file(str(folder / "model.safetensors"))
        count = len(self.config.widths) - 1
        self.layers = [
            (tensors[f"layers.{i}.weight"].float(), tensors[f"layers.{i}.bias"].float())
            for i in range(count)
        ]
        self.embedder = embedder

    def score(self, images: Sequence[np.ndarray], prompt: str) -> list[float]:
        import torch

        if not images:
            return []
        x = self.embedder.image_embeddings(images)
        if self.config.normalize:
            x = torch.nn.functional.normalize(x, dim=-1)
        for i, (weight, bias) in enumerate(self.layers):
            x = torch.nn.functional.linear(x, weight, bias)
            if i < len(self.layers) - 1 and self.config.activation == "relu":
                x = torch.relu(x)
            elif i < len(self.layers) - 1 and self.config.activation == "gelu":
                x = torch.nn.functional.gelu(x)
        return [float(v) for v in x[:, 0].double()]


# ---- loading ----------------------------------------------------------------------


def check_plugins(specs: Iterable[PluginSpec]) -> None:
    """Every check of every plug-in folder ``specs`` name, loading and importing nothing;
    raises on the first that fails."""
    specs = list(specs)
    for spec in specs:
        spec.validate()
        if sum(other.kind == spec.kind for other in specs) > 1:
            raise PluginError(f"The plug-in {spec.kind!r} is named twice.")
        if spec.kind == "aesthetic":
            check_aesthetic_folder(spec.folder)
        check_clip_folder(spec.clip or spec.folder)


def load_plugins(specs: Iterable[PluginSpec], device: Any = "cpu") -> list[ScorePlugin]:
    """Check and load every plug-in of ``specs``, in order; a CLIP folder named twice loads once.

    Every folder is checked (:func:`check_plugins`) before any is loaded or torch and
    transformers are imported, so the first that fails raises with nothing loaded."""
    specs = list(specs)
    check_plugins(specs)
    plugins: list[ScorePlugin] = []
    embedders: dict[Path, ClipEmbedder] = {}

    def embedder(path: str) -> ClipEmbedder:
        key = Path(path).resolve()
        if key not in embedders:
            embedders[key] = ClipEmbedder(key, device)
        return embedders[key]

    for spec in specs:
        if spec.kind == "clip":
            plugins.append(ClipScore(embedder(spec.folder)))
        else:
            plugins.append(AestheticScore(spec.folder, embedder(spec.clip)))
    return plugins
