"""Load a still image as RGB uint8 the way a person would see it.

Transparent areas are flattened onto white (stamps and logos are drawn for light backgrounds),
16-bit data is scaled to 8 bits rather than clipped, animated GIFs give their first frame, and
EXIF orientation is applied.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .avio import check_file, typed_media_errors
from .errors import CorruptMediaError, UnsupportedMediaError


@typed_media_errors
def load_image(path: str | os.PathLike[str], max_side: int = 1024) -> np.ndarray:
    """HxWx3 uint8 RGB, longer side scaled down (never up) to at most ``max_side``."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    p = check_file(path)
    try:
        with Image.open(p) as im:
            im.seek(0)  # first frame of animated GIF/WebP/multi-page TIFF
            im.load()
            rgb = to_rgb(ImageOps.exif_transpose(im) or im)
    except UnidentifiedImageError:
        raise UnsupportedMediaError(p, "not an image format Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise UnsupportedMediaError(p, f"image too large to decode safely ({exc})") from None
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
