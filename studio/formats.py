"""The recipe metadata that images carry: written by export and the CLI, read back on import.

One format, written down once (Qt-free and torch-free), following AUTOMATIC1111
so that other tools read it:

- PNG: a ``parameters`` text chunk (the A1111 text) and a ``noise-studio-recipe``
  iTXt chunk (our full JSON recipe, exact to the last digit), through Pillow's
  ``PngInfo``. Files written before the key was settled used
  ``noise_studio_recipe``; it is still read.
- JPEG/WebP: the A1111 text in EXIF UserComment (``UNICODE\\0`` + UTF-16BE, as
  A1111 writes it through piexif), and the JSON recipe in EXIF MakerNote after
  ``NoiseStudio\\0``.

Reading treats the bytes as hostile: PNG text chunks are found by our own
chunk walker with caps on their number, on each compressed and decompressed
text, and on the total; EXIF larger than ``MAX_EXIF_BYTES`` is ignored. Texts
come back as plain strings, never evaluated; a recipe is built from them only
through ``Recipe``'s parsers.
"""

from __future__ import annotations

import io
import warnings
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from studio.engine.recipe import BUNDLED_MODEL, Recipe, RecipeError

PARAMETERS_KEY = "parameters"
"""PNG text keyword of the A1111 parameters text."""
RECIPE_KEY = "noise-studio-recipe"
"""PNG text keyword of our full JSON recipe."""
LEGACY_RECIPE_KEYS = ("noise_studio_recipe",)
"""Keywords earlier versions of the CLI wrote the JSON recipe under; read, never written."""
MAKERNOTE_PREFIX = b"NoiseStudio\0"
"""JPEG/WebP keep the JSON recipe in the EXIF MakerNote, after this prefix."""
EXIF_UNICODE_PREFIX = b"UNICODE\0"
"""EXIF UserComment character-code prefix; the text that follows is UTF-16BE (as A1111/piexif write it)."""

MAX_TEXT_CHUNK_BYTES = 1024 * 1024
"""Cap on one metadata text, compressed or decompressed; larger texts are dropped with a warning."""
MAX_TEXT_TOTAL_BYTES = 4 * 1024 * 1024
MAX_TEXT_CHUNKS = 64
MAX_EXIF_BYTES = 1024 * 1024

IMPORT_FORMATS = ("PNG", "JPEG", "WEBP")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}


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
        for key in (RECIPE_KEY, *LEGACY_RECIPE_KEYS):
            if key in self.texts:
                return self.texts[key]
        return None


@dataclass(frozen=True)
class RecipeFromImage:
    """The recipe recovered from image metadata (or None) and warnings for the user."""

    recipe: Recipe | None
    warnings: tuple[str, ...] = ()
    source: str | None = None  # "json", "parameters" or None


# ---- writing ------------------------------------------------------------------------


def metadata_texts(recipe: Recipe, model_hash: str | None = None) -> dict[str, str]:
    """The two metadata texts every image with a recipe carries.

    Both name the model as A1111 does (``Recipe.shared``: "sd15", "org/name"), never
    by its local path, which stays in the project only."""
    shared = recipe.shared()
    return {
        PARAMETERS_KEY: shared.to_parameters(model_hash=model_hash),
        RECIPE_KEY: shared.to_json(),
    }


def png_info(recipe: Recipe, model_hash: str | None = None) -> PngInfo:
    """PNG text chunks for ``Image.save(..., pnginfo=...)``."""
    texts = metadata_texts(recipe, model_hash)
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, texts[PARAMETERS_KEY])  # tEXt, or iTXt when not Latin-1, as A1111
    info.add_itxt(RECIPE_KEY, texts[RECIPE_KEY])
    return info


def exif_bytes(recipe: Recipe, model_hash: str | None = None, include_json: bool = True) -> bytes:
    """EXIF for ``Image.save(..., exif=...)`` (JPEG/WebP); without the JSON copy if asked."""
    texts = metadata_texts(recipe, model_hash)
    exif = Image.Exif()
    ifd = exif.get_ifd(ExifTags.IFD.Exif)
    ifd[ExifTags.Base.UserComment] = EXIF_UNICODE_PREFIX + texts[PARAMETERS_KEY].encode("utf-16-be")
    if include_json:
        ifd[ExifTags.Base.MakerNote] = MAKERNOTE_PREFIX + texts[RECIPE_KEY].encode("utf-8")
    return exif.tobytes()


# ---- reading ------------------------------------------------------------------------


@dataclass
class PngWalk:
    """A PNG split by ``walk_png``: its header size, its texts, and the file without them."""

    size: tuple[int, int] | None = None
    texts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    stripped: bytes = b""
    problem: str | None = None  # "truncated" or "corrupt"


def walk_png(data: bytes) -> PngWalk:
    """Split a PNG into its text chunks and the rest; stops quietly at a truncation."""
    walk = PngWalk()
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


def exif_metadata(data: bytes) -> ImageMetadata:
    """The A1111 text (UserComment) and our JSON recipe (MakerNote) from a JPEG/WebP's EXIF.

    Pillow's ``UnidentifiedImageError`` and decompression-bomb errors propagate,
    for the caller to word; any other EXIF failure only loses the metadata.
    """
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
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, UnidentifiedImageError):
        raise  # the caller words these
    except Exception as exc:  # EXIF parsing is Pillow's; any failure there only loses metadata
        return ImageMetadata({}, (f"The EXIF metadata is unreadable ({short(exc)}).",))
    comment = exif_ifd.get(ExifTags.Base.UserComment)
    if isinstance(comment, bytes) and len(comment) > 8:
        texts[PARAMETERS_KEY] = _decode_user_comment(comment)
    elif isinstance(comment, str) and comment:
        texts[PARAMETERS_KEY] = comment
    note = exif_ifd.get(ExifTags.Base.MakerNote)
    if isinstance(note, bytes) and note.startswith(MAKERNOTE_PREFIX):
        texts[RECIPE_KEY] = note[len(MAKERNOTE_PREFIX) :].decode("utf-8", errors="replace")
    return ImageMetadata(texts)


def recipe_from_metadata(
    metadata: ImageMetadata,
    samplers: Collection[str],
    model_exists: Callable[[str], bool] | None = None,
) -> RecipeFromImage:
    """Build a recipe from metadata, preferring our JSON recipe over the A1111 text.

    ``samplers`` are the sampler names the engine offers (``studio.engine.schedulers.SAMPLERS``);
    an unknown name falls back to the Recipe default with a warning. A model that
    ``model_exists`` (default: the path exists) denies falls back to the bundled
    model with a warning. Prompts longer than ``MAX_PROMPT_CHARS`` are cut there
    with a warning. Nothing is evaluated; bad data gives warnings, never an exception.
    """
    notes = list(metadata.warnings)
    recipe: Recipe | None = None
    source: str | None = None
    if metadata.recipe_json is not None:
        try:
            recipe, source = Recipe.from_json(metadata.recipe_json, notes), "json"
        except (RecipeError, TypeError, ValueError, RecursionError) as exc:
            notes.append(f"The Noise Studio recipe in the image is unreadable ({short(exc)}).")
    if recipe is None and metadata.parameters is not None:
        try:
            recipe, source = Recipe.from_parameters(metadata.parameters, notes), "parameters"
        except (RecipeError, TypeError, ValueError, RecursionError) as exc:
            notes.append(f"The generation parameters in the image are unreadable ({short(exc)}).")
    if recipe is None:
        return RecipeFromImage(None, tuple(notes), None)
    if recipe.sampler not in samplers:
        fallback = Recipe.__dataclass_fields__["sampler"].default
        if fallback not in samplers and samplers:
            fallback = next(iter(samplers))
        notes.append(f"The sampler {short(recipe.sampler)!r} is not available; using {fallback}.")
        recipe = recipe.with_changes(sampler=fallback)
    if recipe.model != BUNDLED_MODEL:
        exists = model_exists or _path_exists
        try:
            found = bool(exists(recipe.model))
        except (OSError, ValueError):
            found = False
        if not found:
            notes.append(
                f"The model {short(recipe.model)!r} was not found; using the bundled model."
            )
            recipe = recipe.with_changes(model=BUNDLED_MODEL)
    return RecipeFromImage(recipe, tuple(notes), source)


def short(value: object, limit: int = 80) -> str:
    """``value`` as text of at most ``limit`` characters, for a one-sentence message."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- internals ------------------------------------------------------------------------


def _read_text_chunk(ctype: bytes, body: bytes, walk: PngWalk) -> None:
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


def _decode_user_comment(raw: bytes) -> str:
    prefix, body = raw[:8], raw[8:]
    if prefix == EXIF_UNICODE_PREFIX:
        return body.decode(_utf16_byte_order(body), errors="replace")
    if prefix.startswith(b"ASCII"):
        return body.decode("ascii", errors="replace")
    return body.decode("utf-8", errors="replace").rstrip("\0")


def _utf16_byte_order(body: bytes) -> str:
    """The codec of a UTF-16 UserComment: its BOM, else the byte order its zero bytes show.

    piexif/A1111 write big-endian without a BOM; some tools write little-endian
    without one. Text that is mostly Latin has a zero high byte in every unit,
    so the zeros fall on odd offsets for little-endian and even ones for big-endian.
    """
    if body.startswith(b"\xff\xfe"):
        return "utf-16"  # the BOM names the order and is dropped
    if body.startswith(b"\xfe\xff"):
        return "utf-16"
    even_zeros = body[0::2].count(0)
    odd_zeros = body[1::2].count(0)
    return "utf-16-le" if odd_zeros > even_zeros else "utf-16-be"


def _path_exists(model: str) -> bool:
    return Path(model).expanduser().exists()
