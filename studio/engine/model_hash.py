"""The short hash that names a model's weights in image metadata, cached on disk.

- A single file: AUTOMATIC1111's ``Model hash`` (its checkpoint ``shorthash``,
  the "AutoV2" hash civitai shows; not the legacy ``sd_models.model_hash`` of
  64 KiB): the first 10 hex digits of the sha256 of the whole file.
- A diffusers folder: the first 10 hex digits of the sha256 of a
  ``sha256sum``-style listing of the weight files the loader reads (the
  ``.safetensors`` of unet, vae, text_encoder and text_encoder_2, shards
  included; ``*.fp16.safetensors`` only where a part has no plain weights; in
  path order): one line ``"<sha256 of the file>  <path relative to the folder>\\n"``
  per file. Any change to any weight the loader reads changes it; configs,
  tokenizers and unread variants do not count.

Hashing a model reads every byte of its weights (seconds for SD sizes), so each
file's sha256 is cached in ``model-hashes.json`` under the user's cache folder
(``$NOISE_STUDIO_CACHE_DIR`` overrides it), keyed by its resolved path and
checked against its size and modification time: a file that changed is hashed
again. Torch-free and Qt-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

SHORT_HASH_DIGITS = 10
CACHE_FILE = "model-hashes.json"
CACHE_DIR_ENV = "NOISE_STUDIO_CACHE_DIR"
MAX_CACHE_BYTES = 4 * 1024 * 1024
HASHED_COMPONENTS = ("text_encoder", "text_encoder_2", "unet", "vae")

_lock = threading.Lock()


def model_hash(path: str | os.PathLike[str]) -> str:
    """The short hash of a single-file model or a diffusers folder (see the module docstring)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)[:SHORT_HASH_DIGITS]
    listing = "".join(
        f"{file_sha256(file)}  {file.relative_to(path).as_posix()}\n"
        for file in folder_weight_files(path)
    )
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()[:SHORT_HASH_DIGITS]


def cached_model_hash(path: str | os.PathLike[str]) -> str | None:
    """The short hash when every file it covers is in the cache and unchanged, else None.

    Never reads weights, so it is cheap enough for the UI thread."""
    path = Path(path)
    try:
        if path.is_file():
            digest = _cached(path, _load_cache())
            return digest[:SHORT_HASH_DIGITS] if digest else None
        if not path.is_dir():
            return None
        cache = _load_cache()
        lines = []
        for file in folder_weight_files(path):
            digest = _cached(file, cache)
            if digest is None:
                return None
            lines.append(f"{digest}  {file.relative_to(path).as_posix()}\n")
    except OSError:
        return None
    if not lines:
        return None
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()[:SHORT_HASH_DIGITS]


def folder_weight_files(folder: Path) -> list[Path]:
    """The weight files of a diffusers folder that its hash covers (those the loader
    reads: ``model_files.weight_files``), in path order."""
    from studio.engine.errors import ModelError
    from studio.engine.model_files import weight_files

    files: list[Path] = []
    for component in HASHED_COMPONENTS:
        stem = "model" if component.startswith("text") else "diffusion_pytorch_model"
        if (folder / component).is_dir():
            try:
                files += weight_files(folder / component, stem)
            except ModelError:  # pickle weights only, or a broken shard index: never loaded
                continue
    return sorted(files, key=lambda f: f.relative_to(folder).as_posix())


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, from the cache when its size and mtime still match."""
    cache = _load_cache()
    cached = _cached(path, cache)
    if cached is not None:
        return cached
    info = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    result = digest.hexdigest()
    _store(path, info, result)
    return result


def cache_path() -> Path:
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override) / CACHE_FILE
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("noise-studio", appauthor=False)) / CACHE_FILE


def _key(path: Path) -> str:
    return str(path.resolve())


def _cached(path: Path, cache: dict[str, dict]) -> str | None:
    entry = cache.get(_key(path))
    if not isinstance(entry, dict):
        return None
    info = path.stat()
    if entry.get("size") != info.st_size or entry.get("mtime_ns") != info.st_mtime_ns:
        return None
    digest = entry.get("sha256")
    if isinstance(digest, str) and len(digest) == 64:
        return digest
    return None


def _load_cache() -> dict[str, dict]:
    file = cache_path()
    try:
        if file.stat().st_size > MAX_CACHE_BYTES:
            return {}
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _store(path: Path, info: os.stat_result, digest: str) -> None:
    """Add one entry; a cache that cannot be written only costs a re-hash next time."""
    from studio.atomic_write import write_atomically

    with _lock:
        cache = _load_cache()
        cache[_key(path)] = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": digest}
        file = cache_path()
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(file, json.dumps(cache, indent=0, sort_keys=True).encode("utf-8"))
        except OSError:
            pass
