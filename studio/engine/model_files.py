"""Checks a model file or folder must pass before anything loads it.

Contract: nothing here executes or unpickles anything from a model file, and
nothing allocates memory in proportion to what a file *claims* before that
claim has been checked against the file's real size. Formats are told apart
by their bytes, never by their extension. Every failure is a
``ModelFileError`` whose message is one sentence naming the file.

This module is pure Python (json, struct, and pickletools' disassembler, which
only reads opcodes); it never imports torch.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickletools
import re
import stat
import struct
from pathlib import Path
from typing import Any

from studio.engine.errors import ModelError

SAFETENSORS = "safetensors"
PICKLE = "pickle"
ZIP = "zip"
UNKNOWN = "unknown"

MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_JSON_FILE_BYTES = 16 * 1024 * 1024
MAX_VOCAB_FILE_BYTES = 64 * 1024 * 1024

# Bits per element; safetensors packs sub-byte types, so sizes are counted in bits.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
}

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")

# Component folder -> weight file stem inside it (diffusers vs transformers naming).
_WEIGHT_STEMS = {
    "unet": "diffusion_pytorch_model",
    "vae": "diffusion_pytorch_model",
    "text_encoder": "model",
    "text_encoder_2": "model",
}
_CORE_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_CHECKED_COMPONENTS = (*_CORE_COMPONENTS, "text_encoder_2", "tokenizer_2")

# ---- what a model_index.json may name ---------------------------------------------
# diffusers imports ``library`` and takes ``class`` from it for every component entry,
# so each entry is checked against the pairs the SD 1.x / 2.x / XL families use.
_CLIP_TEXT = {("transformers", "CLIPTextModel"), ("transformers", "CLIPTextModelWithProjection")}
_CLIP_TOKENIZERS = {("transformers", "CLIPTokenizer"), ("transformers", "CLIPTokenizerFast")}
_SCHEDULER_CLASSES = (
    "DDIMScheduler",
    "DDPMScheduler",
    "DEISMultistepScheduler",
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "HeunDiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "LMSDiscreteScheduler",
    "PNDMScheduler",
    "UniPCMultistepScheduler",
)
ALLOWED_COMPONENTS: dict[str, frozenset[tuple[str, str]]] = {
    "unet": frozenset({("diffusers", "UNet2DConditionModel")}),
    "vae": frozenset({("diffusers", "AutoencoderKL")}),
    "text_encoder": frozenset(_CLIP_TEXT),
    "text_encoder_2": frozenset(_CLIP_TEXT),
    "tokenizer": frozenset(_CLIP_TOKENIZERS),
    "tokenizer_2": frozenset(_CLIP_TOKENIZERS),
    "scheduler": frozenset(("diffusers", name) for name in _SCHEDULER_CLASSES),
    # Listed by the published SD folders; Noise Studio never loads them.
    "safety_checker": frozenset({("stable_diffusion", "StableDiffusionSafetyChecker")}),
    "feature_extractor": frozenset(
        {("transformers", "CLIPImageProcessor"), ("transformers", "CLIPFeatureExtractor")}
    ),
    "image_encoder": frozenset({("transformers", "CLIPVisionModelWithProjection")}),
}
ALLOWED_PIPELINES = frozenset({"StableDiffusionPipeline", "StableDiffusionXLPipeline"})

# Files no library reads as text: weights (safetensors are header-checked, pickles refused).
_WEIGHT_SUFFIXES = (".safetensors", ".msgpack", ".onnx", ".h5", ".pb", *PICKLE_SUFFIXES)
_VOCAB_FILES = ("vocab.json", "merges.txt", "tokenizer.json")

# Config values that size an allocation, bounded to what the SD 1.x / 2.x / XL families
# use (OpenCLIP bigG is the largest text encoder, SDXL's UNet the largest UNet).
_CONFIG_BOUNDS: dict[str, dict[str, tuple[int, int]]] = {
    "scheduler": {"num_train_timesteps": (1, 10_000), "steps_offset": (0, 10_000)},
    "text_encoder": {
        "hidden_size": (1, 1280),
        "intermediate_size": (1, 5120),
        "projection_dim": (1, 1280),
        "num_hidden_layers": (1, 32),
        "num_attention_heads": (1, 20),
        "max_position_embeddings": (1, 512),
        "vocab_size": (1, 65_536),
    },
    "unet": {
        "in_channels": (1, 16),
        "out_channels": (1, 16),
        "block_out_channels": (1, 1280),
        "layers_per_block": (1, 4),
        "cross_attention_dim": (1, 2048),
        "attention_head_dim": (1, 64),
        "num_attention_heads": (1, 64),
        "transformer_layers_per_block": (1, 10),
        "sample_size": (1, 256),
        "norm_num_groups": (1, 32),
        "addition_time_embed_dim": (1, 1024),
        "projection_class_embeddings_input_dim": (1, 4096),
        "num_class_embeds": (1, 1000),
        "time_embedding_dim": (1, 5120),
    },
    "vae": {
        "in_channels": (1, 4),
        "out_channels": (1, 4),
        "latent_channels": (1, 16),
        "block_out_channels": (1, 512),
        "layers_per_block": (1, 4),
        "norm_num_groups": (1, 32),
        "sample_size": (1, 1024),
    },
}
_CONFIG_BOUNDS["text_encoder_2"] = _CONFIG_BOUNDS["text_encoder"]

_CORRUPT = "is an incomplete or corrupt model file"


class ModelFileError(ModelError):
    """A model file or folder failed a check before loading.

    ``reason`` is one of ``"pickle"``, ``"corrupt"``, ``"incompatible"`` or
    ``"missing"``, so a caller can choose how to present it;
    the message alone is enough for the user.
    """

    def __init__(self, message: str, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.reason = reason


# ---- format sniffing ---------------------------------------------------------

# Opcodes a protocol 0/1 pickle can start with: MARK, EMPTY_DICT/LIST/TUPLE, GLOBAL, NONE, ints.
_PICKLE_FIRST_OPCODES = frozenset(b"(}])cNIKJL")


def _parses_as_pickle(head: bytes) -> bool:
    """Whether the first bytes disassemble as pickle opcodes (pickletools only reads, never runs)."""
    count = 0
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(head)):
            count += 1
            if opcode.name == "STOP" or count >= 4:
                return True
    except Exception:  # truncated or not a pickle: genops raises several kinds
        pass
    return False


def sniff_format(path: str | os.PathLike[str]) -> str:
    """Return ``"safetensors"``, ``"pickle"``, ``"zip"`` or ``"unknown"`` from the file's bytes.

    ``"safetensors"`` only means the file starts like one; ``check_safetensors``
    decides whether it is sound. Torch's zip format and any other zip are
    ``"zip"``; torch's legacy format and bare pickles are ``"pickle"``.
    """
    with open(path, "rb") as file:
        head = file.read(64)
        kind = _format_of(head)
        size = os.fstat(file.fileno()).st_size
        if kind == UNKNOWN and size > len(head):
            # A zip may carry data in front of it; its end record sits in the last 64 KiB + 22 bytes.
            file.seek(max(0, size - 65_557))
            if b"PK\x05\x06" in file.read():
                kind = ZIP
    return kind


def _format_of(head: bytes) -> str:
    # Safetensors first: a valid header length can itself begin with b"\x80\x03".
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] >= 2:
        return SAFETENSORS
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return PICKLE
    if head[:1] and head[0] in _PICKLE_FIRST_OPCODES and _parses_as_pickle(head):
        return PICKLE
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08") or b"PK\x05\x06" in head:
        return ZIP
    return UNKNOWN


_REFUSAL = "which can run code when loaded, so Noise Studio refuses it; use a .safetensors file"


def refuse_unsafe_format(path: str | os.PathLike[str]) -> None:
    """Raise if the file is pickle-based by its bytes or its name; nothing is ever unpickled."""
    path = Path(path)
    if not path.is_file():  # a FIFO or device would block or never end
        raise ModelFileError(
            f"The model file {path} does not exist or is not a regular file.", path, "missing"
        )
    try:
        kind = sniff_format(path)
    except OSError as exc:
        raise ModelFileError(
            f"The model file {path} cannot be read ({exc.strerror or exc}).", path, "missing"
        ) from exc
    if kind == PICKLE:
        what = "is a Python pickle"
    elif kind == ZIP:
        what = "is a zip archive (PyTorch's pickle-based format)"
    elif kind == UNKNOWN and path.suffix.lower() in PICKLE_SUFFIXES:
        what = f"has a pickle-based file type ({path.suffix})"
    else:
        return
    raise ModelFileError(f"The model file {path} {what}, {_REFUSAL}.", path, PICKLE)


# ---- safetensors -------------------------------------------------------------


def check_safetensors(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Validate a .safetensors file's header against the file; raise ``ModelFileError`` if unsound.

    Reads the 8-byte header length, checks it against the file size before
    reading the header, then checks that every tensor's dtype, shape and
    offsets agree and that the tensors tile the data section exactly. Tensor
    data is never read. Returns the tensor entries (name -> dtype, shape,
    data_offsets) so callers can inspect shapes without loading anything.
    """
    path = Path(path)
    refuse_unsafe_format(path)

    def corrupt(detail: str) -> ModelFileError:
        return ModelFileError(f"{path} {_CORRUPT} ({detail}).", path, "corrupt")

    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            raise corrupt("the file is empty")
        prefix = file.read(8)
        if len(prefix) < 8:
            raise corrupt(f"only {size} bytes long")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES:
            raise corrupt(
                f"its header claims {header_len} bytes, more than the {MAX_HEADER_BYTES} allowed"
            )
        if header_len > size - 8:
            raise corrupt(
                f"its header claims {header_len} bytes but the file has only {size - 8} after the length"
            )
        if header_len < 2:
            raise corrupt("its header is empty")
        raw = file.read(header_len)
    if len(raw) != header_len:
        raise corrupt("the file changed while it was read")
    data_len = size - 8 - header_len

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise corrupt("its header is not UTF-8 text") from None
    if not text.startswith("{"):
        raise corrupt("its header is not a JSON object")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise corrupt(f"its header repeats the key {exc.key!r}") from None
    except (ValueError, RecursionError) as exc:
        raise corrupt(f"its header is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(header, dict):
        raise corrupt("its header is not a JSON object")

    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise corrupt("its __metadata__ is not a map of strings")

    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise corrupt(f"the entry for tensor {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BITS:
            raise corrupt(f"tensor {name!r} has an unknown dtype {str(dtype)[:20]!r}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise corrupt(f"tensor {name!r} has an invalid shape")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(o) for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise corrupt(f"tensor {name!r} has invalid data offsets")
        begin, end = offsets
        if end > data_len:
            raise corrupt(
                f"tensor {name!r} ends at byte {end} but the data section has {data_len} bytes"
            )
        bits = math.prod(shape) * DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            raise corrupt(
                f"tensor {name!r} has shape {shape} of {dtype}, which does not match its {end - begin} bytes"
            )
        spans.append((begin, end, name))

    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin < position:
            raise corrupt(f"tensor {name!r} overlaps another tensor")
        if begin > position:
            raise corrupt(f"there is a gap in the data before tensor {name!r}")
        position = end
    if position != data_len:
        raise corrupt(f"{data_len - position} bytes after the last tensor belong to no tensor")
    return header


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# ---- diffusers folders -------------------------------------------------------


def check_diffusers_folder(path: str | os.PathLike[str]) -> None:
    """Raise ``ModelFileError`` listing every file a diffusers folder lacks.

    Checks model_index.json and, for each component Noise Studio loads, its
    config and weights (safetensors only; a component that has only pickle
    weights is refused). Every config must be a JSON object and every weights
    header must pass ``check_safetensors``. Never touches the network.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelFileError(f"The model folder {folder} does not exist.", folder, "missing")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelFileError(
            f"The model folder {folder} is missing model_index.json, so it is not a diffusers model.",
            folder,
            "missing",
        )
    index = read_json_object(index_path)
    check_model_index(index, index_path)
    components = [
        name for name in _CHECKED_COMPONENTS if name in _CORE_COMPONENTS or _listed(index.get(name))
    ]

    missing: list[str] = []
    for name in _CORE_COMPONENTS:
        if name in index and not _listed(index[name]):
            missing.append(f"{name} (model_index.json lists none)")
    for name in components:
        sub = folder / name
        if not sub.is_dir():
            missing.append(f"{name}/")
            continue
        if name.startswith("tokenizer"):
            if not (sub / "tokenizer.json").is_file():
                missing += [
                    f"{name}/{f}" for f in ("vocab.json", "merges.txt") if not (sub / f).is_file()
                ]
            continue
        config = "scheduler_config.json" if name == "scheduler" else "config.json"
        if not (sub / config).is_file():
            missing.append(f"{name}/{config}")
        if name in _WEIGHT_STEMS and not weight_files(sub, _WEIGHT_STEMS[name]):
            missing.append(f"{name}/{_WEIGHT_STEMS[name]}.safetensors")
    if missing:
        raise ModelFileError(
            f"The model folder {folder} is missing {_join(missing)}.", folder, "missing"
        )

    present = _present_components(folder)
    _check_component_files(folder, present)
    for name in present:
        if name in _WEIGHT_STEMS:
            for weights in weight_files(folder / name, _WEIGHT_STEMS[name]):
                check_safetensors(weights)


def check_model_index(index: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse a model_index.json that names a pipeline or component outside the allow-list.

    diffusers imports the library and class each entry names, so nothing else may
    reach it: ``_class_name`` must be one of ``ALLOWED_PIPELINES``, every
    ``[library, class]`` entry a pair from ``ALLOWED_COMPONENTS`` for its key (or
    ``[null, null]``), and every other value a plain setting.
    """
    path = Path(path)

    def refuse(detail: str) -> ModelFileError:
        return ModelFileError(
            f"Incompatible model: {path} {detail}, which Noise Studio does not load "
            "(only the SD 1.x, 2.x and XL classes are allowed).",
            path,
            "incompatible",
        )

    pipeline = index.get("_class_name", "StableDiffusionPipeline")
    if not isinstance(pipeline, str) or pipeline not in ALLOWED_PIPELINES:
        raise refuse(f"names the pipeline {_shown(pipeline)}")
    for key, value in index.items():
        if isinstance(value, (list, tuple, dict)):
            if isinstance(value, list) and value in ([None, None], [None]):
                continue
            pair = tuple(value) if isinstance(value, list) and len(value) == 2 else None
            if pair is None or pair not in ALLOWED_COMPONENTS.get(key, frozenset()):
                raise refuse(f"names {_shown(value)} for {_shown(key)}")
        elif not (value is None or isinstance(value, (str, bool, int, float))):
            raise refuse(f"holds an odd value for {_shown(key)}")


def check_config_folder(path: str | os.PathLike[str]) -> None:
    """The checks a single-file model's config folder must pass before diffusers reads it.

    model_index.json against the allow-list, then every file of every component
    folder in it sized and every config bounded, as for a diffusers folder (listed
    or not: the single-file loader reads them by name).
    """
    folder = Path(path)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelFileError(
            f"The config folder {folder} has no model_index.json.", folder, "missing"
        )
    index = read_json_object(index_path)
    check_model_index(index, index_path)
    _check_component_files(folder, _present_components(folder))


def _present_components(folder: Path) -> list[str]:
    # The loaders read these folders by name, whatever model_index.json lists (an entry of
    # [null, null] or none at all), so every one that exists is checked.
    return [name for name in _CHECKED_COMPONENTS if (folder / name).is_dir()]


def _check_component_files(folder: Path, components: list[str]) -> None:
    """Size every non-weight file of the components before anything opens it, then
    read each config, refuse remote-code pointers and bound the values that allocate."""
    for name in components:
        if (folder / name).is_dir():
            check_component_folder(folder / name, _CONFIG_BOUNDS.get(name, {}))


def check_component_folder(sub: Path, bounds: dict[str, tuple[int, int]]) -> None:
    """The checks of one transformers- or diffusers-layout folder before any library reads it:
    every non-weight file sized, every config a JSON object with no ``auto_map`` (remote
    code) and the config values in ``bounds`` inside their ranges."""
    for entry in sorted(sub.iterdir()):
        if entry.suffix.lower() in _WEIGHT_SUFFIXES or entry.is_dir():
            continue
        limit = MAX_VOCAB_FILE_BYTES if entry.name in _VOCAB_FILES else MAX_JSON_FILE_BYTES
        check_file_size(entry, limit)
    for config_name in ("config.json", "scheduler_config.json", "tokenizer_config.json"):
        if not (sub / config_name).is_file():
            continue
        config = read_json_object(sub / config_name)
        if "auto_map" in config:
            raise ModelFileError(
                f"{sub / config_name} points to the model's own code (auto_map), which Noise Studio never runs.",
                sub / config_name,
                "incompatible",
            )
        if config_name != "tokenizer_config.json":
            check_config_bounds(sub / config_name, config, bounds)


def check_file_size(path: Path, limit: int) -> None:
    """Refuse anything but a regular file of at most ``limit`` bytes (FIFOs and devices too)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ModelFileError(
            f"The model file {path} cannot be read ({exc.strerror or exc}).", path, "missing"
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(
            f"The model file {path} is not a regular file, so it is not read.", path, "corrupt"
        )
    if info.st_size > limit:
        raise ModelFileError(
            f"{path} {_CORRUPT} (it is {info.st_size} bytes, more than the {limit} allowed for this file).",
            path,
            "corrupt",
        )


def check_config_bounds(
    path: Path,
    config: dict[str, Any],
    bounds: dict[str, tuple[int, int]],
    family: str = "SD 1.x, 2.x and XL models",
) -> None:
    """Refuse a config whose values in ``bounds`` (counts that size allocations) fall outside
    the ranges ``family`` uses."""
    for key, (low, high) in bounds.items():
        value = config.get(key)
        if value is None:
            continue
        values = list(_flatten(value)) if isinstance(value, list) else [value]
        for item in values:
            if not _is_count(item) or not low <= item <= high:
                raise ModelFileError(
                    f"{path} is an incompatible model: {key} is {_shown(value)}, outside the "
                    f"{low} to {high} that {family} use.",
                    path,
                    "incompatible",
                )
    if "trained_betas" in config and config["trained_betas"] is not None:
        betas, steps = config["trained_betas"], config.get("num_train_timesteps", 1000)
        if not isinstance(betas, list) or len(betas) != steps:
            raise ModelFileError(
                f"{path} is an incompatible model: trained_betas does not hold one value per timestep.",
                path,
                "incompatible",
            )


def _flatten(value: list[Any]) -> Any:
    for item in value:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _listed(entry: Any) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and entry[1] is not None


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


WEIGHT_VARIANTS = ("fp16",)
"""Variants loaded when a component has no plain weights (many SDXL folders ship only these)."""


def weight_variant(component: Path, stem: str) -> str | None:
    """The variant the loader must ask for: None when plain weights exist, else the first
    of ``WEIGHT_VARIANTS`` present (``{stem}.fp16.safetensors`` or its shard index)."""
    if (component / f"{stem}.safetensors").is_file() or (
        component / f"{stem}.safetensors.index.json"
    ).is_file():
        return None
    for variant in WEIGHT_VARIANTS:
        if (component / f"{stem}.{variant}.safetensors").is_file() or (
            component / f"{stem}.safetensors.index.{variant}.json"
        ).is_file():
            return variant
    return None


def weight_files(component: Path, stem: str) -> list[Path]:
    """The safetensors weight files of one component folder, shards included.

    Raises ``ModelFileError`` when the folder holds only pickle weights (named),
    or when a shard index points outside the folder. Variant files such as
    ``*.fp16.safetensors`` count only when there are no plain weights (see
    ``weight_variant``): they are what the loader then asks for.
    """
    variant = weight_variant(component, stem)
    infix = f".{variant}" if variant else ""
    single = component / f"{stem}{infix}.safetensors"
    if single.is_file():
        return [single]
    index = component / (f"{stem}.safetensors.index{infix}.json")
    if index.is_file():
        return _shards(component, index)
    pickles = sorted(p for p in component.glob(f"{stem}*") if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ModelFileError(
            f"The model file {pickles[0]} is pickle-based weights with no .safetensors beside it, {_REFUSAL}.",
            pickles[0],
            PICKLE,
        )
    return []


def _shards(component: Path, index: Path) -> list[Path]:
    weight_map = read_json_object(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelFileError(f"{index} {_CORRUPT} (it has no weight_map).", index, "corrupt")
    shards = []
    for shard in sorted({str(v) for v in weight_map.values()}):
        if Path(shard).name != shard or not shard.endswith(".safetensors"):
            raise ModelFileError(
                f"{index} {_CORRUPT} (shard {shard[:60]!r} is not a .safetensors file in its folder).",
                index,
                "corrupt",
            )
        if not (component / shard).is_file():
            raise ModelFileError(
                f"The model folder {component.parent} is missing {component.name}/{shard}.",
                component.parent,
                "missing",
            )
        shards.append(component / shard)
    return shards


def read_json_object(path: Path, limit: int = MAX_JSON_FILE_BYTES) -> dict[str, Any]:
    """Read a small JSON object file with a size cap; raise ``ModelFileError`` if it is not one."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise ModelFileError(
                f"{path} {_CORRUPT} (it is {size} bytes, more than the {limit} allowed for this file).",
                path,
                "corrupt",
            )
        with open(path, "rb") as file:
            data = json.loads(
                file.read(min(size, limit) + 1).decode("utf-8"),
                object_pairs_hook=_no_duplicate_keys,
            )
    except ModelFileError:
        raise
    except OSError as exc:
        raise ModelFileError(
            f"The model file {path} cannot be read ({exc.strerror or exc}).", path, "missing"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(
            f"{path} {_CORRUPT} (not valid JSON: {str(exc)[:80]}).", path, "corrupt"
        ) from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} {_CORRUPT} (not a JSON object).", path, "corrupt")
    return data


# ---- weights versus configs --------------------------------------------------


def check_compatibility(folder: str | os.PathLike[str]) -> None:
    """Raise ``ModelFileError`` ("incompatible model: …") when weights and configs disagree.

    Shapes come from the safetensors headers only. Checks the text encoders'
    widths, depth and vocabulary against their configs and tokenizers, the
    VAE's latent channels, the UNet's input/output channels (the latent's, or
    an inpainting UNet's 2 × latent + 1 in) and its cross-attention width
    against the text encoders. Call after ``check_diffusers_folder``.
    """
    folder = Path(folder)
    index = read_json_object(folder / "model_index.json")

    def incompatible(detail: str) -> ModelFileError:
        return ModelFileError(
            f"{folder} is an incompatible model: {detail}.", folder, "incompatible"
        )

    text_widths: list[int] = []
    for name in ("text_encoder", "text_encoder_2"):
        if name != "text_encoder" and not _listed(index.get(name)):
            continue
        config = read_json_object(folder / name / "config.json")
        shapes = _shapes(folder / name, _WEIGHT_STEMS[name])
        text_widths.append(_check_text_encoder(name, config, shapes, incompatible))
        tokenizer = folder / name.replace("text_encoder", "tokenizer") / "vocab.json"
        if tokenizer.is_file():
            vocab = read_json_object(tokenizer, MAX_VOCAB_FILE_BYTES)
            ids = [v for v in vocab.values() if _is_count(v)]
            rows = _config_int(config, "vocab_size")
            if ids and rows is not None and max(ids) >= rows:
                raise incompatible(
                    f"the tokenizer has token id {max(ids)} but {name} has only {rows} token embeddings"
                )

    vae_config = read_json_object(folder / "vae" / "config.json")
    vae_shapes = _shapes(folder / "vae", "diffusion_pytorch_model")
    latent = _config_int(vae_config, "latent_channels", 4)
    post_quant = vae_shapes.get("post_quant_conv.weight")
    if post_quant and post_quant[:2] != [latent, latent]:
        raise incompatible(
            f"the VAE weights have {post_quant[0]} latent channels but vae/config.json says {latent}"
        )
    decoder_in = vae_shapes.get("decoder.conv_in.weight")
    if decoder_in and len(decoder_in) > 1 and decoder_in[1] != latent:
        raise incompatible(
            f"the VAE decoder takes {decoder_in[1]} channels but vae/config.json says {latent}"
        )

    unet_config = read_json_object(folder / "unet" / "config.json")
    unet_shapes = _shapes(folder / "unet", "diffusion_pytorch_model")
    in_channels = _config_int(unet_config, "in_channels", 4)
    out_channels = _config_int(unet_config, "out_channels", 4)
    conv_in = unet_shapes.get("conv_in.weight")
    if conv_in and len(conv_in) > 1 and conv_in[1] != in_channels:
        raise incompatible(
            f"the UNet weights take {conv_in[1]} input channels but unet/config.json says {in_channels}"
        )
    conv_out = unet_shapes.get("conv_out.weight")
    if conv_out and conv_out[0] != out_channels:
        raise incompatible(
            f"the UNet weights give {conv_out[0]} output channels but unet/config.json says {out_channels}"
        )
    inpainting = in_channels == latent + latent + 1  # latent, mask, masked image's latent
    if (in_channels != latent and not inpainting) or out_channels != latent:
        raise incompatible(
            f"the UNet works on {in_channels} in / {out_channels} out channels but the VAE has {latent} latent channels"
        )

    cross = unet_config.get("cross_attention_dim")
    cross_weights = {
        s[1] for k, s in unet_shapes.items() if k.endswith("attn2.to_k.weight") and len(s) == 2
    }
    if len(cross_weights) > 1:
        raise incompatible(
            f"the UNet's cross-attention layers disagree on their width ({sorted(cross_weights)})"
        )
    if isinstance(cross, int) and cross_weights and cross_weights != {cross}:
        raise incompatible(
            f"the UNet weights attend to width {cross_weights.pop()} but unet/config.json says {cross}"
        )
    width = cross_weights.pop() if cross_weights else cross if isinstance(cross, int) else None
    # SDXL feeds the UNet both encoders' hidden states side by side.
    if width is not None and text_widths and width not in (text_widths[-1], sum(text_widths)):
        raise incompatible(
            f"the UNet expects text features of width {width} but the text encoder gives {'+'.join(map(str, text_widths))}"
        )


def _check_text_encoder(
    name: str, config: dict[str, Any], shapes: dict[str, list[int]], incompatible: Any
) -> int:
    hidden = _config_int(config, "hidden_size")
    if hidden is None:
        raise incompatible(f"{name}/config.json has no hidden_size")
    # transformers 4 saves CLIP keys under "text_model.", transformers 5 without it.
    shapes = {k.removeprefix("text_model."): v for k, v in shapes.items()}
    embedding = shapes.get("embeddings.token_embedding.weight")
    if embedding is None:
        raise incompatible(
            f"{name} has no embeddings.token_embedding.weight, so it is not a CLIP text encoder"
        )
    if len(embedding) != 2 or embedding[1] != hidden:
        raise incompatible(
            f"the {name} weights have hidden size {embedding[-1]} but {name}/config.json says {hidden}"
        )
    vocab = _config_int(config, "vocab_size")
    if vocab is not None and embedding[0] != vocab:
        raise incompatible(
            f"the {name} weights have {embedding[0]} tokens but {name}/config.json says {vocab}"
        )
    positions = shapes.get("embeddings.position_embedding.weight")
    max_positions = _config_int(config, "max_position_embeddings")
    if positions and max_positions is not None and positions[0] != max_positions:
        raise incompatible(
            f"the {name} weights have {positions[0]} positions but {name}/config.json says {max_positions}"
        )
    layer_ids = {int(m.group(1)) for k in shapes if (m := re.match(r"encoder\.layers\.(\d+)\.", k))}
    layers = _config_int(config, "num_hidden_layers")
    if layers is not None and layer_ids and max(layer_ids) + 1 != layers:
        raise incompatible(
            f"the {name} weights have {max(layer_ids) + 1} layers but {name}/config.json says {layers}"
        )
    fc1 = shapes.get("encoder.layers.0.mlp.fc1.weight")
    intermediate = _config_int(config, "intermediate_size")
    if fc1 and intermediate is not None and fc1 != [intermediate, hidden]:
        raise incompatible(
            f"the {name} weights have MLP width {fc1[0]} but {name}/config.json says {intermediate}"
        )
    return hidden


def _shapes(component: Path, stem: str) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for weights in weight_files(component, stem):
        for key, entry in check_safetensors(weights).items():
            shapes[key] = entry["shape"]
    return shapes


def _config_int(config: dict[str, Any], key: str, default: int | None = None) -> int | None:
    value = config.get(key, default)
    return value if _is_count(value) else default


def check_model_folder(path: str | os.PathLike[str]) -> None:
    """All checks for a diffusers folder, in the order a loader needs them."""
    check_diffusers_folder(path)
    check_compatibility(path)


# ---- single-file checkpoints (original Stable Diffusion layout) ------------------

_SINGLE_FILE_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
_SINGLE_FILE_TEXT_WIDTHS = {
    "sd1": "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    "sd2": "cond_stage_model.model.token_embedding.weight",
    "sdxl": "conditioner.embedders.1.model.token_embedding.weight",
}


def check_single_file(
    path: str | os.PathLike[str], config_dir: str | os.PathLike[str] | None = None
) -> str:
    """Check a single-file SD checkpoint and return its family ("sd1", "sd2", "sdxl" or "unknown").

    Runs ``check_safetensors``, refuses an inpainting UNet, and when a config
    folder is given, refuses weights whose UNet channels or cross-attention
    width differ from that folder's unet/config.json (e.g. SD2 weights with
    an SD1 config). Reads headers only.
    """
    path = Path(path)
    header = check_safetensors(path)

    def incompatible(detail: str) -> ModelFileError:
        return ModelFileError(f"{path} is an incompatible model: {detail}.", path, "incompatible")

    family = next(
        (name for name, key in _SINGLE_FILE_TEXT_WIDTHS.items() if key in header), "unknown"
    )
    unet_in = header.get(_SINGLE_FILE_UNET_IN, {}).get("shape")
    in_channels = unet_in[1] if isinstance(unet_in, list) and len(unet_in) == 4 else None
    if in_channels == 9:
        raise incompatible(
            "the UNet has 9 input channels, an inpainting model, which Noise Studio reads only as "
            "a diffusers folder (unet/config.json with in_channels 9)"
        )
    cross = {
        entry["shape"][1]
        for key, entry in header.items()
        if key.startswith("model.diffusion_model.")
        and key.endswith("attn2.to_k.weight")
        and len(entry["shape"]) == 2
    }
    if config_dir is not None:
        config = read_json_object(Path(config_dir) / "unet" / "config.json")
        expected_in = _config_int(config, "in_channels", 4)
        if in_channels is not None and in_channels != expected_in:
            raise incompatible(
                f"the UNet takes {in_channels} input channels but {Path(config_dir) / 'unet' / 'config.json'} says {expected_in}"
            )
        expected_cross = config.get("cross_attention_dim")
        if isinstance(expected_cross, int) and cross and cross != {expected_cross}:
            raise incompatible(
                f"the UNet attends to text of width {max(cross)} but the config folder {config_dir} is for width {expected_cross}"
            )
    return family


def unet_layout_fits(header: dict[str, Any], config_dir: str | os.PathLike[str]) -> bool:
    """Whether a single file's UNet (its safetensors ``header``) has the first channels and
    the number of input blocks that ``config_dir``'s unet/config.json builds; True when
    either cannot be told. Tells a file's config folder among several of one family."""
    config = read_json_object(Path(config_dir) / "unet" / "config.json")
    layout, expected = _unet_layout(header), _config_unet_layout(config)
    return layout is None or expected is None or layout == expected


def _unet_layout(header: dict[str, Any]) -> tuple[int, int] | None:
    """The file UNet's (first block's channels, number of input blocks), from key names."""
    prefix = "model.diffusion_model.input_blocks."
    first = header.get(_SINGLE_FILE_UNET_IN, {}).get("shape")
    blocks = {key[len(prefix) :].split(".", 1)[0] for key in header if key.startswith(prefix)}
    if not isinstance(first, list) or len(first) != 4 or not all(b.isdigit() for b in blocks):
        return None
    return int(first[0]), max(int(b) for b in blocks) + 1


def _config_unet_layout(config: dict[str, Any]) -> tuple[int, int] | None:
    """What a unet/config.json builds: its first channels and its input blocks (the first
    convolution, each level's layers, a downsampler after every level but the last)."""
    channels = config.get("block_out_channels", (320, 640, 1280, 1280))
    layers = config.get("layers_per_block", 2)
    if not isinstance(channels, list | tuple) or not channels:
        return None
    layers = [layers] * len(channels) if _is_count(layers) else layers
    if not isinstance(layers, list | tuple) or len(layers) != len(channels):
        return None
    if not all(_is_count(n) for n in (*channels, *layers)):
        return None
    return int(channels[0]), 1 + sum(layers) + len(channels) - 1
