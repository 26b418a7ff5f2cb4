"""Safe import of PNG, JPEG and WebP images and of the recipe metadata they carry.

Images come from the internet, so everything here treats the file as hostile:

- The pixel count is checked against our own cap (``MAX_IMPORT_PIXELS``) from
  the header, before any pixel is decoded. For PNG the header is read by our
  own chunk walker, so Pillow never sees a file that is too large; Pillow's
  ``DecompressionBombWarning`` is turned into an error as a second guard.
- Truncated or corrupt files raise ``ImageImportError`` with one sentence,
  never a half-grey layer (Pillow's ``LOAD_TRUNCATED_IMAGES`` is refused).
- PNG text chunks are read by our own walker with size caps on the compressed
  and on the decompressed text, and Pillow decodes a copy of the file with
  the text chunks removed. Metadata is returned as plain strings; it is never
  evaluated, and a recipe is built from it only through ``Recipe``'s parsers.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from studio.engine.recipe import BUNDLED_MODEL, Recipe, RecipeError

MAX_IMPORT_PIXELS = 64_000_000
"""Our own cap on width x height; images above it are refused before decoding."""
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_TEXT_CHUNK_BYTES = 1024 * 1024
"""Cap on one metadata text, compressed or decompressed; larger texts are dropped with a warning."""
MAX_TEXT_TOTAL_BYTES = 4 * 1024 * 1024
MAX_TEXT_CHUNKS = 64
MAX_EXIF_BYTES = 1024 * 1024

PARAMETERS_KEY = "parameters"
"""PNG text keyword of the A1111 parameters text."""
RECIPE_KEY = "noise-studio-recipe"
"""PNG text keyword of our full JSON recipe."""
MAKERNOTE_PREFIX = b"NoiseStudio\0"
"""JPEG/WebP keep the JSON recipe in the EXIF MakerNote, after this prefix."""
EXIF_UNICODE_PREFIX = b"UNICODE\0"
"""EXIF UserComment character-code prefix; the text that follows is UTF-16BE (as A1111/piexif write it)."""

IMPORT_FORMATS = ("PNG", "JPEG", "WEBP")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}


class ImageImportError(ValueError):
    """An image could not be imported; the message is one sentence for the user."""


@dataclass(frozen=True)
class ImageMetadata:
    """Text metadata found in an image, as plain strings, plus what was dropped and why."""

    texts: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def parameters(self) -> str | None:
        return self.texts.get(PARAMETERS_KEY)

    @property
    def recipe_json(self) -> str | None:
        return self.texts.get(RECIPE_KEY)


@dataclass(frozen=True)
class ImportedImage:
    """Decoded pixels (straight RGBA uint8, (H, W, 4)) and the file's metadata."""

    pixels: np.ndarray
    metadata: ImageMetadata
    format: str


@dataclass(frozen=True)
class RecipeFromImage:
    """The recipe recovered from image metadata (or None) and warnings for the user."""

    recipe: Recipe | None
    warnings: tuple[str, ...] = ()
    source: str | None = None  # "json", "parameters" or None


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


def recipe_from_metadata(
    metadata: ImageMetadata,
    samplers: Collection[str],
    model_exists: Callable[[str], bool] | None = None,
) -> RecipeFromImage:
    """Build a recipe from metadata, preferring our JSON recipe over the A1111 text.

    ``samplers`` are the sampler names the engine offers (``studio.engine.schedulers.SAMPLERS``);
    an unknown name falls back to the Recipe default with a warning. A model that
    ``model_exists`` (default: the path exists) denies falls back to the bundled
    model with a warning. Nothing is evaluated; bad data gives warnings, never an exception.
    """
    notes = list(metadata.warnings)
    recipe: Recipe | None = None
    source: str | None = None
    if metadata.recipe_json is not None:
        try:
            recipe, source = Recipe.from_json(metadata.recipe_json), "json"
        except (RecipeError, TypeError, ValueError, RecursionError) as exc:
            notes.append(f"The Noise Studio recipe in the image is unreadable ({_short(exc)}).")
    if recipe is None and metadata.parameters is not None:
        try:
            recipe, source = Recipe.from_parameters(metadata.parameters), "parameters"
        except (RecipeError, TypeError, ValueError, RecursionError) as exc:
            notes.append(f"The generation parameters in the image are unreadable ({_short(exc)}).")
    if recipe is None:
        return RecipeFromImage(None, tuple(notes), None)
    if recipe.sampler not in samplers:
        fallback = Recipe.__dataclass_fields__["sampler"].default
        if fallback not in samplers and samplers:
            fallback = next(iter(samplers))
        notes.append(f"The sampler {_short(recipe.sampler)!r} is not available; using {fallback}.")
        recipe = recipe.with_changes(sampler=fallback)
    if recipe.model != BUNDLED_MODEL:
        exists = model_exists or _path_exists
        try:
            found = bool(exists(recipe.model))
        except (OSError, ValueError):
            found = False
        if not found:
            notes.append(
                f"The model {_short(recipe.model)!r} was not found; using the bundled model."
            )
            recipe = recipe.with_changes(model=BUNDLED_MODEL)
    return RecipeFromImage(recipe, tuple(notes), source)


# ---- internals ------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
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
        walk = _walk_png(data)
        if walk.size is not None:
            _check_pixels(path, walk.size, MAX_IMPORT_PIXELS)
        if walk.problem and decode:
            raise ImageImportError(
                f"{path.name} is {walk.problem} (a PNG chunk is cut short or damaged) and was not imported."
            )
        return ImageMetadata(walk.texts, tuple(walk.warnings)), io.BytesIO(walk.stripped)
    return _exif_metadata(path, data), io.BytesIO(data)


@dataclass
class _PngWalk:
    size: tuple[int, int] | None = None
    texts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    stripped: bytes = b""
    problem: str | None = None


def _walk_png(data: bytes) -> _PngWalk:
    """Split a PNG into its text chunks and the rest; stops quietly at a truncation."""
    walk = _PngWalk()
    kept = [PNG_SIGNATURE]
    pos, total, seen = len(PNG_SIGNATURE), 0, 0
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            walk.problem = "truncated"
            break
        body = data[pos + 8 : pos + 8 + length]
        if zlib.crc32(data[pos + 4 : pos + 8 + length]) != int.from_bytes(
            data[end - 4 : end], "big"
        ):
            walk.problem = "corrupt"
            break
        if ctype == b"IHDR" and length >= 8 and walk.size is None:
            walk.size = (int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big"))
        if ctype in _TEXT_CHUNKS:
            seen += 1
            if seen > MAX_TEXT_CHUNKS:
                if seen == MAX_TEXT_CHUNKS + 1:
                    walk.warnings.append(
                        f"Only the first {MAX_TEXT_CHUNKS} metadata texts were read."
                    )
            elif total + length > MAX_TEXT_TOTAL_BYTES:
                walk.warnings.append("Metadata beyond 4 MB in total was ignored.")
            else:
                total += length
                _read_text_chunk(ctype, body, walk)
        else:
            kept.append(data[pos:end])
        pos = end
        if ctype == b"IEND":
            break
    else:
        walk.problem = walk.problem or "truncated"
    walk.stripped = b"".join(kept)
    return walk


def _read_text_chunk(ctype: bytes, body: bytes, walk: _PngWalk) -> None:
    keyword, sep, rest = body.partition(b"\0")
    key = keyword[:79].decode("latin-1")
    if not sep or not key:
        walk.warnings.append("A malformed metadata text was ignored.")
        return
    if len(body) > MAX_TEXT_CHUNK_BYTES:
        walk.warnings.append(f"The metadata text {key!r} is larger than 1 MB and was ignored.")
        return
    try:
        if ctype == b"tEXt":
            text = rest.decode("latin-1")
        elif ctype == b"zTXt":
            text = _inflate(rest[1:]).decode("latin-1")
        else:  # iTXt: compression flag, method, language\0, translated keyword\0, UTF-8 text
            compressed = rest[:1] == b"\x01"
            _lang, _, rest = rest[2:].partition(b"\0")
            _translated, _, raw = rest.partition(b"\0")
            text = (_inflate(raw) if compressed else raw).decode("utf-8", errors="replace")
    except _TooLarge:
        walk.warnings.append(
            f"The metadata text {key!r} is larger than 1 MB uncompressed and was ignored."
        )
        return
    except (zlib.error, ValueError):
        walk.warnings.append(f"The metadata text {key!r} is corrupt and was ignored.")
        return
    walk.texts.setdefault(key, text)


class _TooLarge(Exception):
    pass


def _inflate(raw: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(raw, MAX_TEXT_CHUNK_BYTES + 1)
    if len(out) > MAX_TEXT_CHUNK_BYTES or inflater.unconsumed_tail:
        raise _TooLarge
    return out


def _exif_metadata(path: Path, data: bytes) -> ImageMetadata:
    """A1111 parameters from EXIF UserComment and our JSON recipe from MakerNote (JPEG/WebP)."""
    notes: list[str] = []
    texts: dict[str, str] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMPORT_FORMATS) as image:
                raw_exif = image.info.get("exif")
                if not raw_exif:
                    return ImageMetadata()
                if len(raw_exif) > MAX_EXIF_BYTES:
                    return ImageMetadata({}, ("EXIF metadata larger than 1 MB was ignored.",))
                exif_ifd = image.getexif().get_ifd(ExifTags.IFD.Exif)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageImportError(f"{path.name} declares more pixels than this app imports.") from None
    except UnidentifiedImageError:
        raise ImageImportError(
            f"{path.name} is not a PNG, JPEG or WebP image this app can read."
        ) from None
    except Exception as exc:  # EXIF parsing is Pillow's; any failure there only loses metadata
        return ImageMetadata({}, (f"The EXIF metadata is unreadable ({_short(exc)}).",))
    comment = exif_ifd.get(ExifTags.Base.UserComment)
    if isinstance(comment, bytes) and len(comment) > 8:
        texts[PARAMETERS_KEY] = _decode_user_comment(comment)
    elif isinstance(comment, str) and comment:
        texts[PARAMETERS_KEY] = comment
    note = exif_ifd.get(ExifTags.Base.MakerNote)
    if isinstance(note, bytes) and note.startswith(MAKERNOTE_PREFIX):
        texts[RECIPE_KEY] = note[len(MAKERNOTE_PREFIX) :].decode("utf-8", errors="replace")
    return ImageMetadata(texts, tuple(notes))


def _decode_user_comment(raw: bytes) -> str:
    prefix, body = raw[:8], raw[8:]
    if prefix == EXIF_UNICODE_PREFIX:
        # piexif/A1111 write UTF-16BE; some tools write little-endian with a BOM.
        if body.startswith(b"\xff\xfe"):
            return body[2:].decode("utf-16-le", errors="replace")
        if body.startswith(b"\xfe\xff"):
            body = body[2:]
        return body.decode("utf-16-be", errors="replace")
    if prefix.startswith(b"ASCII"):
        return body.decode("ascii", errors="replace")
    return body.decode("utf-8", errors="replace").rstrip("\0")


def _path_exists(model: str) -> bool:
    return Path(model).expanduser().exists()


def _short(value: object, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
