"""Finding and loading models, and the device/dtype policy.

Models load from local files only: the bundled model, diffusers folders
(SD 1.x / 2.x / XL), single-file ``.safetensors`` with a local config folder,
and snapshots already in the Hugging Face cache. Nothing is downloaded and
nothing from a model file is executed: only safetensors weights are read, and
every file is checked by its bytes before it is handed to a loader.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Offline before diffusers/transformers are imported: a missing file must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

from studio.engine.errors import ModelError
from studio.engine.memory_saving import MemorySaving
from studio.engine.model_refs import (  # noqa: F401  (re-exported: the engine's one place)
    BUNDLED_NAME,
    BUNDLED_PATH,
    RESOURCES,
    _hf_cache_root,
    _hf_cache_snapshot,
    find_config_folder,
    list_models,
    resolve,
)
from studio.engine.recipe import BUNDLED_MODEL, model_name

# Published linear latent→RGB maps (RGB in [-1, 1]) for families without a fitted one.
_PREVIEW_FACTORS: dict[str, tuple[list[list[float]], list[float]]] = {
    "sd1": (
        [
            [0.3512, 0.2297, 0.3227],
            [0.3250, 0.4974, 0.2350],
            [-0.2829, 0.1762, 0.2721],
            [-0.2120, -0.2616, -0.7177],
        ],
        [0.0, 0.0, 0.0],
    ),
    "sdxl": (
        [
            [0.3651, 0.4232, 0.4341],
            [-0.2533, -0.0042, 0.1068],
            [0.1076, 0.1111, -0.0362],
            [-0.3165, -0.2492, -0.2188],
        ],
        [0.1084, -0.0175, -0.0011],
    ),
}
_PREVIEW_FACTORS["sd2"] = _PREVIEW_FACTORS["sd1"]

_ALLOWED_TEXT_ENCODERS = {"CLIPTextModel", "CLIPTextModelWithProjection"}


@dataclass(frozen=True)
class DevicePolicy:
    """Where the model runs and in which dtype."""

    device: torch.device
    dtype: torch.dtype

    def describe(self) -> str:
        kind = {"cuda": "CUDA", "mps": "MPS", "cpu": "CPU"}.get(self.device.type, self.device.type)
        return f"{kind} {str(self.dtype).removeprefix('torch.')}"


def choose_device(override: str | None = None) -> DevicePolicy:
    """CUDA in fp16 (bf16 where asked), then Apple MPS, then CPU fp32.

    ``override`` (or $NOISE_STUDIO_DEVICE) is "cpu", "cuda", "mps", optionally with
    ":fp16", ":bf16" or ":fp32", e.g. "cuda:bf16".
    """
    override = override or os.environ.get("NOISE_STUDIO_DEVICE") or ""
    name, _, dtype_name = override.partition(":")
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    if dtype_name and dtype_name not in dtypes:
        raise ModelError(f"Unknown dtype {dtype_name!r}; use fp16, bf16 or fp32.")
    if not name:
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("CUDA was asked for, but no CUDA device is available.")
    if name not in {"cpu", "cuda", "mps"}:
        raise ModelError(f"Unknown device {name!r}; use cpu, cuda or mps.")
    default = torch.float32 if name == "cpu" else torch.float16
    return DevicePolicy(torch.device(name), dtypes.get(dtype_name, default))


THREADS_ENV = "NOISE_STUDIO_TORCH_THREADS"


def torch_threads(reserve: int = 0) -> int:
    """Intra-op threads for CPU work: all cores but ``reserve``.

    $NOISE_STUDIO_TORCH_THREADS, then the standard $OMP_NUM_THREADS, override the choice.
    Measured on a busy 2-core machine: a 30-step run took 66 s with torch's default of
    2 threads and 0.6 s with 1, because idle-spinning threads fight other work for the cores.
    The thread count is part of exactness on CPU: reductions may round differently with
    another count, so a run and its resume should use the same one.
    """
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        override = os.environ.get(name, "").strip()
        if override.isdigit() and int(override) > 0:
            return int(override)
    return max(1, (os.cpu_count() or 2) - reserve)


def studio_torch_threads() -> int:
    """The one thread count the CLI and the window both use: all cores but one, at least 1.

    One core is left for the window's UI thread, and the CLI uses the same count so
    that a render and its resume agree bit for bit whichever of the two ran them
    (see ``torch_threads`` for the overrides and why the count is part of exactness).
    """
    return torch_threads(reserve=1)


@dataclass(eq=False)
class LoadedModel:
    """A text-to-image model's components on one device, ready for the Sampler."""

    ref: str
    name: str
    path: Path
    family: str  # "sd1", "sd2", "sdxl" or "custom"
    tokenizer: Any
    text_encoder: Any
    unet: Any
    vae: Any
    scheduler_config: dict[str, Any]
    preview_factors: torch.Tensor
    preview_bias: torch.Tensor
    policy: DevicePolicy
    tokenizer_2: Any = None
    text_encoder_2: Any = None
    weights_file: Path | None = None
    preview_decoder: Any = None  # a studio.engine.preview.PreviewDecoder, if the model has one
    config_dir: Path | None = None  # a single file's config folder
    force_zeros_for_empty_prompt: bool = False  # SDXL: no negative prompt means zero embeddings
    memory_saving: MemorySaving = field(default_factory=MemorySaving)
    offload: Any = None  # a studio.engine.memory_saving.PartOffload while parts are offloaded
    _hash: str | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return self.policy.device

    @property
    def dtype(self) -> torch.dtype:
        return self.policy.dtype

    @property
    def size_factor(self) -> int:
        """Width and height must be multiples of this (the VAE's downsampling)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def native_size(self) -> int:
        """The side in pixels the model was trained at: the UNet's sample size × the VAE factor."""
        sample = self.unet.config.sample_size
        if isinstance(sample, (list, tuple)):
            sample = max(sample)
        return int(sample) * self.size_factor

    @property
    def latent_channels(self) -> int:
        """The channels of the latent the sampler denoises (the UNet's output)."""
        return int(self.unet.config.out_channels)

    @property
    def is_inpainting(self) -> bool:
        """A true inpainting UNet: it takes the latent, the mask and the masked image's
        latent (4 + 1 + 4 = 9 channels for SD), as diffusers' inpaint pipeline feeds it."""
        return int(self.unet.config.in_channels) == 2 * self.latent_channels + 1

    @property
    def is_xl(self) -> bool:
        return self.text_encoder_2 is not None

    def describe(self) -> str:
        return self.policy.describe()

    @property
    def model_hash(self) -> str:
        """A1111's short hash for a single file, our documented one for a folder
        (``studio.engine.model_hash``); read from the hash cache when it can be."""
        if self._hash is None:
            from studio.engine.model_hash import model_hash

            self._hash = model_hash(self.path)
        return self._hash


def load_model(
    ref: str = BUNDLED_MODEL,
    device: str | None = None,
    config_dir: str | Path | None = None,
    memory_saving: MemorySaving | None = None,
) -> LoadedModel:
    """Load a model from local files. Raises ModelError with one clear sentence.

    The weights' size is checked against free memory before any is read; the
    memory savers (``memory_saving``, default from the environment, see
    ``studio.engine.memory_saving``) are set once the model is loaded."""
    policy = choose_device(device)
    saving = memory_saving or MemorySaving.from_environment()
    path = resolve(ref)
    if path.is_dir():
        model = _load_folder(ref, path, policy, saving)
    elif path.suffix.lower() == ".safetensors" or path.is_file():
        model = _load_single_file(ref, path, policy, config_dir, saving)
    else:
        raise ModelError(f"The model {ref!r} is neither a folder nor a file.")
    from studio.engine.preview import find_preview_decoder, fit_linear_map

    model.preview_decoder = find_preview_decoder(
        path, model.family, model.latent_channels, model.size_factor, model.device
    )
    if not (path / "preview.json").is_file() and model.family not in _PREVIEW_FACTORS:
        model.preview_factors, model.preview_bias = fit_linear_map(model.vae, model.latent_channels)
    return model


# ---- loading -----------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        if (
            path.stat().st_size > 16 * 1024 * 1024
        ):  # a config is small; a huge one is hostile or broken
            raise ModelError(f"The model's {what} ({path}) is too large to be a config file.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"The model is missing its {what} ({path}).") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"The model's {what} ({path}) is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise ModelError(f"The model's {what} ({path}) is not a JSON object.")
    return data


def _check_folder(path: Path) -> None:
    """Byte-level checks of every file before a loader sees it (studio.engine.model_files)."""
    try:
        from studio.engine import model_files
    except ImportError:  # pragma: no cover - model_files is part of the engine
        return
    model_files.check_diffusers_folder(path)
    model_files.check_compatibility(path)


def _quiet_loaders() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def _check_memory(
    name: str,
    parts: dict[str, list[dict[str, Any]]],
    policy: DevicePolicy,
    saving: MemorySaving,
    through_ram: bool,
) -> bool:
    """Refuse a model that cannot fit before any weight is read; True: offload its parts."""
    from studio.engine.memory_saving import check_fits, weights_bytes

    sizes = {part: weights_bytes(headers, policy.dtype) for part, headers in parts.items()}
    return check_fits(
        name,
        sum(sizes.values()),
        policy.device,
        largest_part=max(sizes.values(), default=0),
        offload=saving.cpu_offload,
        through_ram=through_ram,
    )


def _folder_headers(path: Path, variants: dict[str, str | None]) -> dict[str, list[dict]]:
    from studio.engine.model_files import check_safetensors, weight_files

    return {
        sub: [
            check_safetensors(f)
            for f in weight_files(path / sub, "model" if sub.startswith("text") else _UNET_STEM)
        ]
        for sub in variants
    }


_UNET_STEM = "diffusion_pytorch_model"


def _load_folder(ref: str, path: Path, policy: DevicePolicy, saving: MemorySaving) -> LoadedModel:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from studio.engine.model_files import weight_variant

    _quiet_loaders()

    index = _read_json(path / "model_index.json", "model_index.json")
    _check_folder(path)  # the model_index allow-list, file sizes and config bounds first
    parts = [p for p in ("text_encoder", "text_encoder_2", "unet", "vae") if (path / p).is_dir()]
    variants = {
        p: weight_variant(path / p, "model" if p.startswith("text") else _UNET_STEM) for p in parts
    }
    offload = _check_memory(
        model_name(ref) or path.name, _folder_headers(path, variants), policy, saving, True
    )
    xl = "text_encoder_2" in index
    upcast_vae = xl and policy.dtype == torch.float16 and _vae_forces_upcast(path / "vae")
    text_classes = {
        "CLIPTextModel": CLIPTextModel,
        "CLIPTextModelWithProjection": CLIPTextModelWithProjection,
    }

    def text_encoder(sub: str) -> Any:
        entry = index.get(sub) or [None, "CLIPTextModel"]
        cls_name = entry[1] if isinstance(entry, list) and len(entry) == 2 else "CLIPTextModel"
        if cls_name not in _ALLOWED_TEXT_ENCODERS:
            raise ModelError(
                f"Incompatible model: text encoder class {cls_name!r} is not supported."
            )
        return _complete(
            path / sub,
            text_classes[cls_name].from_pretrained(
                path,
                subfolder=sub,
                variant=variants.get(sub),
                local_files_only=True,
                use_safetensors=True,
                torch_dtype=policy.dtype,
                trust_remote_code=False,
                output_loading_info=True,
            ),
        )

    try:
        tokenizer = CLIPTokenizer.from_pretrained(
            path, subfolder="tokenizer", local_files_only=True
        )
        encoder = text_encoder("text_encoder")
        tokenizer_2 = encoder_2 = None
        if "text_encoder_2" in index:
            tokenizer_2 = CLIPTokenizer.from_pretrained(
                path, subfolder="tokenizer_2", local_files_only=True
            )
            encoder_2 = text_encoder("text_encoder_2")
        unet, vae = (
            _complete(
                path / sub,
                cls.from_pretrained(
                    path,
                    subfolder=sub,
                    variant=variants.get(sub),
                    local_files_only=True,
                    use_safetensors=True,
                    torch_dtype=torch.float32 if upcast_vae and sub == "vae" else policy.dtype,
                    low_cpu_mem_usage=False,
                    output_loading_info=True,
                ),
            )
            for cls, sub in ((UNet2DConditionModel, "unet"), (AutoencoderKL, "vae"))
        )
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise ModelError(f"The model in {path} could not be loaded: {_first_line(exc)}") from None
    scheduler_config = _read_json(path / "scheduler" / "scheduler_config.json", "scheduler config")
    family = _family(unet, encoder_2)
    factors, bias = _preview_map(path, family, int(unet.config.out_channels))
    model = LoadedModel(
        ref=ref,
        name=model_name(str(path)) if path != BUNDLED_PATH else BUNDLED_NAME,
        path=path,
        family=family,
        tokenizer=tokenizer,
        text_encoder=encoder,
        unet=unet,
        vae=vae,
        scheduler_config=scheduler_config,
        preview_factors=factors,
        preview_bias=bias,
        policy=policy,
        tokenizer_2=tokenizer_2,
        text_encoder_2=encoder_2,
        weights_file=next(iter(sorted((path / "unet").glob("*.safetensors"))), None),
        force_zeros_for_empty_prompt=xl and index.get("force_zeros_for_empty_prompt", True) is True,
        memory_saving=saving,
    )
    _check_shapes(model)
    return _to_device(model, offload)


def _load_single_file(
    ref: str,
    path: Path,
    policy: DevicePolicy,
    config_dir: str | Path | None,
    saving: MemorySaving,
) -> LoadedModel:
    """An original-format single file with a local config folder, read with one copy in
    memory (``studio.engine.single_file``); nothing prints progress."""
    from studio.engine import model_files

    header = model_files.check_safetensors(path)
    if path.suffix.lower() != ".safetensors":
        raise ModelError(f"{path.name}: only .safetensors model files are accepted.")
    if config_dir is None:
        raise ModelError(
            f"{path.name} is a single-file model; it needs a local config folder "
            "(model_index.json plus component configs and tokenizer files), given with --model-config."
        )
    config_path = Path(config_dir)
    # The allow-list, sizes and bounds of the config folder before any library reads it.
    model_files.check_config_folder(config_path)
    index = _read_json(config_path / "model_index.json", "model_index.json in the config folder")
    model_files.check_single_file(path, config_path)  # inpainting or other-family weights
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from studio.engine import single_file

    _quiet_loaders()
    xl = "text_encoder_2" in index
    parts = ["unet", "vae", "text_encoder"] + (["text_encoder_2"] if xl else [])
    by_part = {
        part: [
            {
                k: v
                for k, v in header.items()
                if k.startswith(single_file.PART_PREFIXES[part])
                and not (part == "text_encoder" and k.startswith("conditioner.embedders.1."))
            }
        ]
        for part in parts
    }
    offload = _check_memory(path.stem, by_part, policy, saving, through_ram=False)
    upcast_vae = xl and policy.dtype == torch.float16 and _vae_forces_upcast(config_path / "vae")
    load_on = torch.device("cpu") if offload else policy.device
    text_classes = {
        "CLIPTextModel": CLIPTextModel,
        "CLIPTextModelWithProjection": CLIPTextModelWithProjection,
    }

    def text_class(sub: str) -> Any:
        entry = index.get(sub) or [None, "CLIPTextModel"]
        name = entry[1] if isinstance(entry, list) and len(entry) == 2 else "CLIPTextModel"
        if name not in _ALLOWED_TEXT_ENCODERS:
            raise ModelError(f"Incompatible model: text encoder class {name!r} is not supported.")
        return text_classes[name]

    try:
        checkpoint = single_file.read_checkpoint(path, policy.dtype, load_on)
        loaded = {
            part: single_file.load_part(
                part,
                checkpoint,
                config_path,
                torch.float32 if upcast_vae and part == "vae" else policy.dtype,
                text_class(part) if part.startswith("text") else None,
                path,
            )
            for part in parts
        }
        del checkpoint
        tokenizer = CLIPTokenizer.from_pretrained(
            config_path, subfolder="tokenizer", local_files_only=True
        )
        tokenizer_2 = (
            CLIPTokenizer.from_pretrained(
                config_path, subfolder="tokenizer_2", local_files_only=True
            )
            if xl
            else None
        )
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError) as exc:
        raise ModelError(
            f"{path.name} could not be loaded with the config in {config_path}: {_first_line(exc)}"
        ) from None
    scheduler_config = _read_json(
        config_path / "scheduler" / "scheduler_config.json", "scheduler config"
    )
    unet = loaded["unet"]
    family = _family(unet, loaded.get("text_encoder_2"))
    factors, bias = _preview_map(config_path, family, int(unet.config.out_channels))
    model = LoadedModel(
        ref=ref,
        name=model_name(str(path)),
        path=path,
        family=family,
        tokenizer=tokenizer,
        text_encoder=loaded["text_encoder"],
        unet=unet,
        vae=loaded["vae"],
        scheduler_config=scheduler_config,
        preview_factors=factors,
        preview_bias=bias,
        policy=policy,
        tokenizer_2=tokenizer_2,
        text_encoder_2=loaded.get("text_encoder_2"),
        weights_file=path,
        config_dir=config_path,
        force_zeros_for_empty_prompt=xl and index.get("force_zeros_for_empty_prompt", True) is True,
        memory_saving=saving,
    )
    _check_shapes(model)
    return _to_device(model, offload)


def _vae_forces_upcast(vae_folder: Path) -> bool:
    """The VAE's ``force_upcast`` (diffusers' default: True): decode in fp32, as the SDXL
    pipeline does, rather than waiting for an fp16 decode to give NaN."""
    config = _read_json(vae_folder / "config.json", "VAE config")
    return config.get("force_upcast", True) is True


def _check_shapes(model: LoadedModel) -> None:
    """Refuse combinations that load but cannot work together."""
    unet = model.unet.config
    latent = model.vae.config.latent_channels
    if unet.out_channels != latent or unet.in_channels not in (latent, 2 * latent + 1):
        raise ModelError(
            f"Incompatible model: the UNet takes {unet.in_channels} channels and gives "
            f"{unet.out_channels} but the VAE makes {latent} (an inpainting UNet takes "
            f"{2 * latent + 1})."
        )
    width = model.text_encoder.config.hidden_size
    if model.text_encoder_2 is not None:
        width += model.text_encoder_2.config.hidden_size
    if unet.cross_attention_dim != width:
        raise ModelError(
            f"Incompatible model: the text encoder gives {width}-wide embeddings but the UNet expects "
            f"{unet.cross_attention_dim}."
        )


def _complete(folder: Path, loaded: tuple[Any, dict[str, Any]]) -> Any:
    """The model, unless the weights lack some of what its config builds: those layers
    would stay randomly initialised and draw noise without a word."""
    model, info = loaded
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ModelError(
            f"The weights in {folder} lack {len(missing)} of the tensors its config requires "
            f"(e.g. {missing[0]}), so the model is refused rather than filled with random values."
        )
    return model


def _to_device(model: LoadedModel, offload: bool = False) -> LoadedModel:
    """Every part on the model's device, or (``offload``) in RAM until it runs."""
    from studio.engine.memory_saving import apply_savers

    for part in (model.text_encoder, model.text_encoder_2, model.unet, model.vae):
        if part is not None:
            part.to("cpu" if offload else model.device).eval().requires_grad_(False)
    apply_savers(model, model.memory_saving, offload)
    return model


def _family(unet: Any, text_encoder_2: Any) -> str:
    if text_encoder_2 is not None:
        return "sdxl"
    return {768: "sd1", 1024: "sd2"}.get(int(unet.config.cross_attention_dim), "custom")


def _preview_map(folder: Path, family: str, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fitted latent→RGB map from preview.json, else the family's published one."""
    fitted = folder / "preview.json"
    if fitted.is_file():
        data = _read_json(fitted, "preview.json")
        try:
            factors = torch.tensor(data["latent_rgb_factors"], dtype=torch.float32)
            bias = torch.tensor(data.get("latent_rgb_bias", [0.0, 0.0, 0.0]), dtype=torch.float32)
        except (KeyError, TypeError, ValueError):
            raise ModelError(
                f"The model's preview.json ({fitted}) has no valid latent_rgb_factors."
            ) from None
        if factors.shape != (channels, 3) or bias.shape != (3,):
            raise ModelError(
                f"The model's preview.json ({fitted}) does not fit its {channels} latent channels."
            )
        return factors, bias
    if family in _PREVIEW_FACTORS and channels == 4:
        factors, bias = _PREVIEW_FACTORS[family]
        return torch.tensor(factors), torch.tensor(bias)
    eye = torch.zeros(channels, 3)
    for i in range(min(3, channels)):
        eye[i, i] = 0.5
    return eye, torch.zeros(3)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
