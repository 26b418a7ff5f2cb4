"""Safe import of PNG, JPEG and WebP images and of the recipe metadata they carry.

Images come from the internet, so everything here treats the file as hostile:

- The pixel count is checked against our own cap (``MAX_IMPORT_PIXELS``) from
  the header, before any pixel is decoded. For PNG the header is read by our
  own chunk walker, so Pillow never sees a file that is too large; Pillow's
  ``DecompressionBombWarning`` is turned into an error as a second guard.
- Truncated or corrupt files raise ``ImageImportError`` with one sentence,
  never a half-grey layer (Pillow's ``LOAD_TRUNCATED_IMAGES`` is refused).
- PNG text chunks are read by the chunk walker of ``studio.formats`` (the one
  metadata format, with its size caps), and Pillow decodes a copy of the file
  with the text chunks removed. Metadata is returned as plain strings; it is
  never evaluated, and a recipe is built from it only through ``Recipe``'s parsers.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from studio.formats import (  # re-exported: the import API of the document
    IMPORT_FORMATS,
    MAX_TEXT_CHUNKS,
    PARAMETERS_KEY,
    PNG_SIGNATURE,
    RECIPE_KEY,
    ImageMetadata,
    RecipeFromImage,
    exif_metadata,
    recipe_from_metadata,
    walk_png,
)

__all__ = [
    "IMPORT_FORMATS",
    "MAX_FILE_BYTES",
    "MAX_IMPORT_PIXELS",
    "MAX_TEXT_CHUNKS",
    "PARAMETERS_KEY",
    "PNG_SIGNATURE",
    "RECIPE_KEY",
    "ImageImportError",
    "ImageMetadata",
    "ImportedImage",
    "RecipeFromImage",
    "decode_png",
    "encode_png",
    "read_image",
    "read_layer",
    "read_metadata",
    "recipe_from_metadata",
]

MAX_IMPORT_PIXELS = 64_000_000
"""Our own cap on width x height; images above it are refused before decoding."""
MAX_FILE_BYTES = 512 * 1024 * 1024


class ImageImportError(ValueError):
    """An image could not be imported; the message is one sentence for the user."""


@dataclass(frozen=True)
class ImportedImage:
    """Decoded pixels (straight RGBA uint8, (H, W, 4)) and the file's metadata."""

    pixels: np.ndarray
    metadata: ImageMetadata
    format: str


# ---- reading ------------------------------------------------------------------


def read_image(path: str | os.PathLike[str], max_pixels: int = MAX_IMPORT_PIXELS) -> ImportedImage:
    """Decode an image file for use as a layer; raises ImageImportError with one clear sentence."""
    path = Path(path)
    data = _read_bytes(path)
    metadata, decodable = _metadata_and_stream(path, data)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageImportError("Refusing to import while Pillow is set to accept truncated images.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(decodable, formats=IMPORT_FORMATS) as image:
                _check_pixels(path, image.size, max_pixels)
                image.load()
                fmt = image.format or "?"
                with contextlib.suppress(Exception):  # a broken orientation tag: keep as stored
                    image = ImageOps.exif_transpose(image)
                pixels = np.asarray(image.convert("RGBA")).copy()
    except ImageImportError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageImportError(
            f"{path.name} declares more pixels than this app imports (limit {max_pixels // 1_000_000} megapixels)."
        ) from None
    except UnidentifiedImageError:
        raise ImageImportError(
            f"{path.name} is not a PNG, JPEG or WebP image this app can read."
        ) from None
    except (OSError, SyntaxError, EOFError, ValueError, zlib.error, MemoryError) as exc:
        raise ImageImportError(
            f"{path.name} is truncated or corrupt and was not imported ({exc})."
        ) from None
    return ImportedImage(pixels=pixels, metadata=metadata, format=fmt)


def read_metadata(path: str | os.PathLike[str]) -> ImageMetadata:
    """Read only the text metadata of an image (no pixels are decoded)."""
    path = Path(path)
    metadata, _ = _metadata_and_stream(path, _read_bytes(path), decode=False)
    return metadata


# ---- internals ------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, stat first: a FIFO or a device is refused before it is opened."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ImageImportError(f"{path.name} is not a regular file, so it was not read.")
        size = info.st_size
        if size > MAX_FILE_BYTES:
            raise ImageImportError(
                f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MB and was not imported."
            )
        with path.open("rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)
    except ImageImportError:
        raise
    except OSError as exc:
        raise ImageImportError(f"{path.name} could not be read ({exc.strerror or exc}).") from None


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageImportError(f"{path.name} declares an empty size {width}x{height}.")
    if width * height > max_pixels:
        raise ImageImportError(
            f"{path.name} declares {width}x{height} pixels, more than this app imports "
            f"(limit {max_pixels // 1_000_000} megapixels)."
        )


def _metadata_and_stream(
    path: Path, data: bytes, decode: bool = True
) -> tuple[ImageMetadata, io.BytesIO]:
    """Metadata and a stream Pillow may decode (for PNG: the file without its text chunks)."""
    if data.startswith(PNG_SIGNATURE):
        walk = walk_png(data)
        if walk.size is not None:
            _check_pixels(path, walk.size, MAX_IMPORT_PIXELS)
        if walk.problem and decode:
            raise ImageImportError(
                f"{path.name} is {walk.problem} (a PNG chunk is cut short or damaged) and was not imported."
            )
        return ImageMetadata(walk.texts, tuple(walk.warnings)), io.BytesIO(walk.stripped)
    return _exif_metadata(path, data), io.BytesIO(data)


def _exif_metadata(path: Path, data: bytes) -> ImageMetadata:
    try:
        return exif_metadata(data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageImportError(f"{path.name} declares more pixels than this app imports.") from None
    except UnidentifiedImageError:
        raise ImageImportError(
            f"{path.name} is not a PNG, JPEG or WebP image this app can read."
        ) from None


def read_layer(path: str | os.PathLike[str], name: str | None = None):
    """Import an image file as a new layer; returns (Layer, ImageMetadata). Raises ImageImportError."""
    from studio.document.layers import Layer

    imported = read_image(path)
    return Layer(imported.pixels, name=name or Path(path).stem), imported.metadata


# ---- the project file's image codec ----------------------------------------------------


def encode_png(image: bytes | np.ndarray) -> bytes:
    """PNG bytes for a uint8 HxWx3/HxWx4 array (bytes pass through unchanged); fast, lossless."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """The pixels of PNG bytes the project file wrote (trusted: checked when the file was opened)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image).copy()
