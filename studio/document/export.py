"""Export: images with their recipe, layered files, and trajectory animations.

Every file is written atomically (``studio.atomic_write``): a failed export
leaves an existing file untouched. Images carry the recipe in the one metadata
format of ``studio.formats`` (A1111 ``parameters`` text plus our JSON recipe).
"""

from __future__ import annotations

import importlib.util
import io
import os
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from studio import atomic_write
from studio.document.compositing import BlendMode
from studio.document.layers import Layer, LayerStack
from studio.engine.recipe import Recipe
from studio.formats import exif_bytes, png_info

IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
ANIMATION_FORMATS = {".webp": "WEBP", ".gif": "GIF", ".mp4": "MP4"}
JPEG_EXIF_LIMIT = 65_533  # one APP1 segment


class ExportError(OSError):
    """An export failed; the message is one sentence and the target file is unchanged."""


# ---- atomic writes --------------------------------------------------------------


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(temp_path)`` and move the result over ``path`` only if it succeeded."""
    path = Path(path)
    started = False

    def write_started(temp: Path) -> None:
        nonlocal started
        started = True
        write(temp)

    try:
        return atomic_write.write_atomically(path, write_started)
    except ExportError:
        raise
    except OSError as exc:
        if not started:  # no temporary file could be made beside the target
            folder = path.parent if str(path.parent) else Path(".")
            raise ExportError(f"Cannot write into {folder} ({exc.strerror or exc}).") from None
        raise ExportError(f"Could not export {path.name} ({exc.strerror or exc}).") from exc
    except Exception as exc:
        raise ExportError(f"Could not export {path.name} ({exc}).") from exc


# ---- images ---------------------------------------------------------------------------


def _as_image(pixels: np.ndarray) -> Image.Image:
    arr = np.ascontiguousarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ExportError("Pixels to export must be a uint8 RGB or RGBA array.")
    return Image.fromarray(arr, "RGBA" if arr.shape[2] == 4 else "RGB")


def _flatten(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    if image.mode != "RGBA":
        return image.convert("RGB")
    base = Image.new("RGB", image.size, background)
    base.paste(image, mask=image.getchannel("A"))
    return base


def export_image(
    pixels: np.ndarray,
    path: str | os.PathLike[str],
    recipe: Recipe | None = None,
    *,
    strip_metadata: bool = False,
    quality: int = 92,
    model_hash: str | None = None,
) -> Path:
    """Write a PNG, JPEG or WebP (chosen by the suffix) with the recipe as metadata.

    JPEG has no alpha, so transparent pixels are flattened onto white. With
    ``strip_metadata`` (or no recipe) the file carries no metadata at all.
    """
    path = Path(path)
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(
            f"Cannot export images as {path.suffix or 'files without a suffix'}; use .png, .jpg or .webp."
        )
    image = _as_image(pixels)
    options: dict[str, Any] = {}
    with_metadata = recipe is not None and not strip_metadata
    if fmt == "PNG":
        if with_metadata:
            options["pnginfo"] = png_info(recipe, model_hash)
    elif fmt == "JPEG":
        image = _flatten(image)
        options.update(quality=quality)
        if with_metadata:
            exif = exif_bytes(recipe, model_hash)
            if (
                len(exif) > JPEG_EXIF_LIMIT
            ):  # a huge prompt: keep the A1111 text, drop the JSON copy
                exif = exif_bytes(recipe, model_hash, include_json=False)
            if len(exif) > JPEG_EXIF_LIMIT:
                raise ExportError(
                    "The prompt is too long to fit in JPEG metadata; export as PNG instead."
                )
            options["exif"] = exif
    else:
        options.update(quality=quality)
        if with_metadata:
            options["exif"] = exif_bytes(recipe, model_hash)

    def write(temp: Path) -> None:
        image.save(temp, format=fmt, **options)

    return write_atomically(path, write)


# ---- layered files ------------------------------------------------------------------


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def export_ora(stack: LayerStack, path: str | os.PathLike[str]) -> Path:
    """Write an OpenRaster file (GIMP, Krita, MyPaint) with every layer and the composite.

    Kept per layer: name, order, visibility, opacity, offset and blend mode
    (as the SVG ``composite-op`` names of the spec).
    """
    width, height = stack.size
    if not len(stack) or width <= 0 or height <= 0:
        raise ExportError("There are no layers to export.")
    root = ET.Element("image", {"version": "0.0.5", "w": str(width), "h": str(height)})
    group = ET.SubElement(root, "stack")
    layer_files: list[tuple[str, bytes]] = []
    for index, layer in enumerate(reversed(stack.layers)):  # the spec lists the top layer first
        name = f"data/layer{len(stack) - 1 - index:03d}.png"
        layer_files.append((name, _png_bytes(_as_image(layer.pixels))))
        ET.SubElement(
            group,
            "layer",
            {
                "name": layer.name,
                "src": name,
                "x": str(layer.offset[0]),
                "y": str(layer.offset[1]),
                "opacity": f"{layer.opacity:.4f}",
                "visibility": "visible" if layer.visible else "hidden",
                "composite-op": layer.blend.composite_op,
            },
        )
    merged = _as_image(stack.composite_rgba())
    thumbnail = merged.copy()
    thumbnail.thumbnail((256, 256))
    stack_xml = ET.tostring(root, encoding="utf-8", xml_declaration=True)

    def write(temp: Path) -> None:
        with zipfile.ZipFile(temp, "w") as archive:
            # The spec requires "mimetype" first and stored, so the type can be sniffed at a fixed offset.
            archive.writestr(
                zipfile.ZipInfo("mimetype"), "image/openraster", compress_type=zipfile.ZIP_STORED
            )
            archive.writestr("stack.xml", stack_xml, compress_type=zipfile.ZIP_DEFLATED)
            for name, data in layer_files:
                archive.writestr(
                    name, data, compress_type=zipfile.ZIP_STORED
                )  # PNG is compressed already
            archive.writestr(
                "Thumbnails/thumbnail.png", _png_bytes(thumbnail), compress_type=zipfile.ZIP_STORED
            )
            archive.writestr(
                "mergedimage.png", _png_bytes(merged), compress_type=zipfile.ZIP_STORED
            )

    return write_atomically(path, write)


def psd_available() -> bool:
    """Whether psd-tools is installed; found without importing it (that takes 0.1 s)."""
    return importlib.util.find_spec("psd_tools") is not None


def export_psd(stack: LayerStack, path: str | os.PathLike[str]) -> Path:
    """Write a Photoshop file through psd-tools (optional dependency), keeping the same layer properties."""
    try:
        from psd_tools import PSDImage
        from psd_tools.api.layers import PixelLayer
        from psd_tools.constants import BlendMode as PsdBlend
    except ImportError:
        raise ExportError("PSD export needs the optional psd-tools package.") from None
    width, height = stack.size
    if not len(stack) or width <= 0 or height <= 0:
        raise ExportError("There are no layers to export.")
    modes = {mode: getattr(PsdBlend, mode.name) for mode in BlendMode}

    def write(temp: Path) -> None:
        document = PSDImage.new("RGBA", (width, height))
        for layer in stack.layers:  # psd-tools appends bottom to top
            psd_layer = PixelLayer.frompil(
                _as_image(layer.pixels),
                document,
                name=layer.name,
                top=layer.offset[1],
                left=layer.offset[0],
            )
            document.append(psd_layer)
            psd_layer.opacity = round(layer.opacity * 255)
            psd_layer.visible = layer.visible
            psd_layer.blend_mode = modes[layer.blend]
        document.save(str(temp))

    return write_atomically(path, write)


# ---- trajectories -----------------------------------------------------------------


def frames_from_steps(steps: Sequence[Any], view: str = "x0") -> list[np.ndarray]:
    """The preview frames of a run's steps: ``view`` is "x0" (the predicted image) or "xt" (the noisy latent)."""
    if view not in ("x0", "xt"):
        raise ExportError(f"Unknown trajectory view {view!r}; use 'x0' or 'xt'.")
    return [np.asarray(getattr(step, f"preview_{view}")) for step in steps]


def _scaled(frame: np.ndarray, max_side: int | None) -> Image.Image:
    image = _as_image(frame).convert("RGB")
    if max_side:
        factor = max(1, max_side // max(image.size))
        if factor > 1:  # previews are at latent resolution: enlarge by whole pixels, no blur
            image = image.resize(
                (image.width * factor, image.height * factor), Image.Resampling.NEAREST
            )
    return image


def mp4_available() -> bool:
    """MP4 needs imageio-ffmpeg, whose wheel ships its own ffmpeg binary (no download at run time)."""
    try:
        import imageio_ffmpeg

        return Path(imageio_ffmpeg.get_ffmpeg_exe()).exists()
    except Exception:
        return False


def export_animation(
    frames: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    *,
    frame_ms: int = 100,
    hold_last_ms: int = 1000,
    max_side: int | None = 512,
    loop: bool = True,
) -> Path:
    """Write frames (uint8 RGB, static -> image) as an animated WebP/GIF or an MP4 (by suffix).

    Frames are enlarged by a whole factor up to ``max_side``; the last frame
    is held for ``hold_last_ms`` so the final image can be seen.
    """
    path = Path(path)
    fmt = ANIMATION_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(
            f"Cannot export an animation as {path.suffix or 'a file without a suffix'}; use .webp, .gif or .mp4."
        )
    if not frames:
        raise ExportError("There are no steps to export.")
    if frame_ms <= 0:
        raise ExportError("The frame duration must be positive.")
    images = [_scaled(frame, max_side) for frame in frames]
    if len({image.size for image in images}) != 1:
        raise ExportError("All frames of an animation must have the same size.")
    durations = [frame_ms] * len(images)
    durations[-1] = max(frame_ms, hold_last_ms)
    if fmt == "MP4":
        return _export_mp4(images, path, frame_ms, hold_last_ms)

    def write(temp: Path) -> None:
        options: dict[str, Any] = {
            "save_all": True,
            "append_images": images[1:],
            "duration": durations,
        }
        if loop:
            options["loop"] = 0
        if fmt == "WEBP":
            # Lossless, so that the last frame is the exported image pixel for pixel.
            options.update(lossless=True, quality=80, method=4)
        images[0].save(temp, format=fmt, **options)

    return write_atomically(path, write)


def _export_mp4(images: list[Image.Image], path: Path, frame_ms: int, hold_last_ms: int) -> Path:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ExportError("MP4 export needs the optional imageio-ffmpeg package.") from None
    fps = 1000.0 / frame_ms
    hold = max(0, round(hold_last_ms / frame_ms) - 1)
    width, height = images[0].size
    # yuv420p needs even sides; pad with the edge colour rather than let ffmpeg rescale
    even = ((width + 1) // 2 * 2, (height + 1) // 2 * 2)

    def write(temp: Path) -> None:
        writer = imageio_ffmpeg.write_frames(
            str(temp),
            even,
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=2,
            output_params=["-f", "mp4"],
            ffmpeg_log_level="error",
        )
        writer.send(None)
        try:
            for image in [*images, *[images[-1]] * hold]:
                if image.size != even:
                    padded = Image.new("RGB", even)
                    padded.paste(image)
                    image = padded
                writer.send(np.ascontiguousarray(np.asarray(image)).tobytes())
        finally:
            writer.close()

    return write_atomically(path, write)


def contact_sheet(
    frames: Sequence[tuple[int, np.ndarray]],
    total: int,
    *,
    columns: int | None = None,
    cell: int = 192,
    padding: int = 8,
    background: tuple[int, int, int] = (24, 24, 28),
    title: Sequence[str] = (),
) -> np.ndarray:
    """A grid of selected steps, each labelled "step k / N" (k counted from 1).

    ``frames`` holds (0-based step index, uint8 RGB image) pairs; ``title`` lines
    (see :func:`contact_sheet_title`) are written above the grid.
    """
    if not frames:
        raise ExportError("Select at least one step for the contact sheet.")
    columns = columns or min(len(frames), 6)
    rows = (len(frames) + columns - 1) // columns
    font = ImageFont.load_default(size=max(10, cell // 12))
    label_h = max(14, cell // 8)
    title_h = len(title) * label_h
    sheet_w = padding + columns * (cell + padding)
    sheet_h = padding + title_h + rows * (cell + label_h + padding)
    sheet = Image.new("RGB", (sheet_w, sheet_h), background)
    draw = ImageDraw.Draw(sheet)
    for line_number, line in enumerate(title):
        draw.text(
            (padding, padding + line_number * label_h),
            _fit(draw, line, font, sheet_w - 2 * padding),
            fill=(230, 230, 230),
            font=font,
        )
    for i, (index, frame) in enumerate(frames):
        image = _as_image(np.asarray(frame)).convert("RGB")
        scale = cell / max(image.size)
        resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample
        )
        col, row = i % columns, i // columns
        x = padding + col * (cell + padding)
        y = padding + title_h + row * (cell + label_h + padding)
        sheet.paste(image, (x + (cell - image.width) // 2, y + (cell - image.height) // 2))
        draw.text((x, y + cell + 2), f"step {index + 1} / {total}", fill=(230, 230, 230), font=font)
    return np.asarray(sheet).copy()


def contact_sheet_title(recipe: Recipe, version_name: str, project_name: str = "") -> list[str]:
    """The contact sheet's title lines: project and version, the prompt, seed and sampler."""
    head = f"{project_name} · {version_name}" if project_name else version_name
    prompt = " ".join(recipe.prompt.split())
    return [
        head,
        f"“{prompt}”" if prompt else "(no prompt)",
        f"seed {recipe.seed} · {recipe.sampler} · {recipe.steps} steps · guidance {recipe.guidance:g}",
    ]


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def export_contact_sheet(
    frames: Sequence[tuple[int, np.ndarray]],
    total: int,
    path: str | os.PathLike[str],
    recipe: Recipe | None = None,
    **options: Any,
) -> Path:
    """Write a contact sheet PNG (with the recipe's metadata unless ``recipe`` is None)."""
    return export_image(contact_sheet(frames, total, **options), path, recipe)


def layer_for_export(layer: Layer) -> np.ndarray:
    """A single layer's pixels as they are exported on their own (opacity applied to alpha)."""
    if layer.opacity >= 1.0:
        return layer.pixels
    out = layer.pixels.copy()
    out[..., 3] = np.round(out[..., 3].astype(np.float32) * layer.opacity).astype(np.uint8)
    return out
