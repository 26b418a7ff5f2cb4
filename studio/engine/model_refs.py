"""Where models are: the bundled one, folders, single files and the Hugging Face cache.

Torch-free, so the window can list models, resolve a reference or pair a single
file with a config folder without loading torch on the UI thread. Loading lives
in :mod:`studio.engine.models`.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from studio.engine.errors import ModelError
from studio.engine.recipe import BUNDLED_MODEL

# Package data (studio/resources/, listed in pyproject.toml): inside a checkout, an editable
# install and an installed wheel alike. A real folder on disk: diffusers reads it by path.
RESOURCES = Path(str(files("studio") / "resources"))
BUNDLED_NAME = "noise-world"
BUNDLED_PATH = RESOURCES / "models" / BUNDLED_NAME


def resolve(ref: str) -> Path:
    """Turn a model reference ("bundled", a folder, a file, "hf:org/name") into a local path."""
    if ref in ("", BUNDLED_MODEL, BUNDLED_NAME):
        return BUNDLED_PATH
    if ref.startswith("hf:"):
        return _hf_cache_snapshot(ref[3:])
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelError(f"The model {ref!r} was not found.")
    return path


def list_models(extra_dirs: list[Path] | tuple[Path, ...] = ()) -> list[tuple[str, str]]:
    """(label, ref) pairs: the bundled model, diffusers folders and single files in
    ``extra_dirs``, and diffusers snapshots in the local Hugging Face cache."""
    found: list[tuple[str, str]] = [(f"{BUNDLED_NAME} (bundled)", BUNDLED_MODEL)]
    for folder in extra_dirs:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            continue
        if (folder / "model_index.json").is_file():
            found.append((folder.name, str(folder)))
            continue
        for child in sorted(folder.iterdir()):
            if (child / "model_index.json").is_file() or child.suffix.lower() == ".safetensors":
                found.append((child.name, str(child)))
    hub = _hf_cache_root()
    if hub.is_dir():
        for repo in sorted(hub.glob("models--*")):
            name = repo.name.removeprefix("models--").replace("--", "/")
            if any((s / "model_index.json").is_file() for s in (repo / "snapshots").glob("*")):
                found.append((f"{name} (HF cache)", f"hf:{name}"))
    return found


def find_config_folder(weights: Path, folders: list[Path] | tuple[Path, ...]) -> Path | None:
    """A config folder for the single file ``weights`` among the models in ``folders`` and
    the Hugging Face cache: a diffusers folder that passes the config checks and whose
    family (XL or not) and UNet shapes fit the file's headers. None if none does, and None
    too when the folders that fit disagree on what the headers cannot tell (an SD 2 base
    and a 768-v folder share every shape but not prediction type or size): the user is
    asked rather than given a guess that renders wrongly."""
    from studio.engine.model_files import (
        check_config_folder,
        check_safetensors,
        check_single_file,
        unet_layout_fits,
    )

    try:
        header = check_safetensors(weights)
    except (ModelError, OSError):
        return None
    fitting: dict[tuple[object, object], Path] = {}
    for _label, ref in list_models(folders):
        if ref == BUNDLED_MODEL:
            continue
        try:
            candidate = resolve(ref)
            if not candidate.is_dir():
                continue
            check_config_folder(candidate)
            family = check_single_file(weights, candidate)
            fits = unet_layout_fits(header, candidate)
        except (ModelError, OSError):
            continue
        if fits and (family == "sdxl") == (candidate / "text_encoder_2").is_dir():
            fitting.setdefault(_undecided_by_headers(candidate), candidate)
    return next(iter(fitting.values())) if len(fitting) == 1 else None


def _undecided_by_headers(folder: Path) -> tuple[object, object]:
    """What a config folder decides that a single file's tensor shapes do not: the
    scheduler's prediction type and the UNet's sample size."""
    from studio.engine.model_files import read_json_object

    try:
        scheduler = read_json_object(folder / "scheduler" / "scheduler_config.json")
        unet = read_json_object(folder / "unet" / "config.json")
    except (ModelError, OSError):
        return (None, None)
    return (scheduler.get("prediction_type", "epsilon"), unet.get("sample_size"))


def _hf_cache_root() -> Path:
    home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")),
        "hub",
    )
    return Path(home)


def _hf_cache_snapshot(repo: str) -> Path:
    folder = _hf_cache_root() / ("models--" + repo.replace("/", "--"))
    ref_file = folder / "refs" / "main"
    if ref_file.is_file():
        snapshot = folder / "snapshots" / ref_file.read_text().strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted((folder / "snapshots").glob("*")) if folder.is_dir() else []
    if not snapshots:
        raise ModelError(
            f"{repo} is not in the local Hugging Face cache ({folder}); nothing is downloaded."
        )
    return snapshots[-1]
