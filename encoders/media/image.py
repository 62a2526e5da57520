"""Load a still image as RGB uint8 the way a person would see it.

Transparent areas are flattened onto white (stamps and logos are drawn for light backgrounds),
16-bit data is scaled to 8 bits rather than clipped, animated GIFs give their first frame, and
EXIF orientation is applied. Images over ``IMAGE_MAX_PIXELS`` are refused from the header, before
any pixel is decoded, with ``ImageTooLargeError``; Pillow's own global decompression-bomb check (a
warning, then an error at twice its limit) is kept out of the way so neither leaks to callers.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .avio import check_file, typed_media_errors
from .errors import CorruptMediaError, ImageTooLargeError, UnsupportedMediaError

IMAGE_MAX_PIXELS = 100_000_000
"""Largest still image decoded (e.g. 10000 x 10000). Decoding needs about 4 bytes per pixel, plus
copies while flattening alpha: roughly 1.5 GB for one image at the limit (estimated)."""

_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def open_image(p: Path, notes: list[str] | None = None) -> Image.Image:
    """``Image.open`` (header only) with mmrec's pixel limit instead of Pillow's global one.

    Raises ImageTooLargeError when the image is over ``IMAGE_MAX_PIXELS``; other Pillow errors
    propagate for the caller to type. Pillow's warnings about the header (damaged EXIF in a TIFF)
    go to ``notes`` instead of stderr.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(p)
        except Image.DecompressionBombError as exc:
            size = _header_size(p)
            found = _BOMB_PIXELS.search(str(exc))
            pixels = size[0] * size[1] if size else int(found.group(1)) if found else None
            raise too_large(p, size, pixels) from None
    if notes is not None:
        notes.extend(f"image metadata: {w.message}" for w in caught)
    width, height = im.size
    if width * height > IMAGE_MAX_PIXELS:
        im.close()
        raise too_large(p, (width, height), width * height)
    return im


def _header_size(p: Path) -> tuple[int, int] | None:
    """Width and height from the header via Pillow's registered format readers, which (unlike
    ``Image.open``) skip the bomb check: only used to name the size of an image being refused."""
    Image.init()
    with open(p, "rb") as fp:
        prefix = fp.read(16)
        for fmt in Image.ID:
            factory, accept = Image.OPEN[fmt]
            try:
                if accept is not None and not accept(prefix):
                    continue
                fp.seek(0)
                return factory(fp, str(p)).size
            except Exception:  # any header this reader cannot parse: try the next one
                continue
    return None


def too_large(p: Path, size: tuple[int, int] | None, pixels: int | None) -> ImageTooLargeError:
    """The error for an image over the limit, with its size when the header gave one."""
    what = f"{size[0]}x{size[1]} = {pixels:,} pixels" if size and pixels else None
    if what is None:
        what = f"{pixels:,} pixels" if pixels else "more pixels than Pillow allows"
    return ImageTooLargeError(
        p,
        f"image too large to decode: {what}, over the limit of {IMAGE_MAX_PIXELS:,} pixels",
        pixels=pixels,
        limit=IMAGE_MAX_PIXELS,
    )


@typed_media_errors
def load_image(path: str | os.PathLike[str], max_side: int = 1024) -> np.ndarray:
    """HxWx3 uint8 RGB, longer side scaled down (never up) to at most ``max_side``."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    p = check_file(path)
    try:
        with open_image(p) as im, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module=r"PIL\.")  # damaged EXIF etc.: probe reports it
            im.seek(0)  # first frame of animated GIF/WebP/multi-page TIFF
            if im.width * im.height > IMAGE_MAX_PIXELS:  # a first frame larger than the header said
                raise too_large(p, im.size, im.width * im.height)
            im.load()
            rgb = to_rgb(ImageOps.exif_transpose(im) or im)
    except UnidentifiedImageError:
        raise UnsupportedMediaError(p, "not an image format Pillow can read") from None
    except Image.DecompressionBombError:
        raise too_large(p, None, None) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptMediaError(p, f"image data is damaged or truncated ({exc})") from None
    if max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.LANCZOS, reducing_gap=3.0)
    return np.asarray(rgb, dtype=np.uint8)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: high bit depths scaled, alpha composited onto white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = _deep_to_l(im)
    if im.mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    if im.mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    return im.convert("RGB")


def _deep_to_l(im: Image.Image) -> Image.Image:
    """16-bit/32-bit grayscale to 8-bit L, scaling by the nominal bit depth (not min-max stretching)."""
    arr = np.asarray(im)
    if im.mode == "F":
        scaled = np.clip(arr, 0.0, 1.0) * 255.0 if arr.max(initial=0.0) <= 1.0 else np.clip(arr, 0, 255)
    else:
        top = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        scaled = np.clip(arr.astype(np.float64), 0, top) * (255.0 / top)
    return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
