"""load_image(): alpha on white, 16-bit, GIF palette, TIFF, EXIF orientation, size limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoders.media import CorruptMediaError, load_image


@pytest.fixture(scope="session")
def badger_rgba(badger_png: Path) -> np.ndarray:
    return np.asarray(Image.open(badger_png).convert("RGBA"))


def test_alpha_flattened_on_white(badger_png: Path, badger_rgba: np.ndarray) -> None:
    img = load_image(badger_png)
    assert img.shape == (75, 191, 3) and img.dtype == np.uint8
    clear = badger_rgba[..., 3] == 0
    opaque = badger_rgba[..., 3] == 255
    assert clear.mean() > 0.2 and opaque.mean() > 0.2
    assert np.all(img[clear] == 255)  # transparent pixels are white, whatever RGB they stored
    assert np.array_equal(img[opaque], badger_rgba[..., :3][opaque])  # opaque pixels untouched


def test_sixteen_bit_png_scaled_not_clipped(stamp_variants: dict[str, Path], badger_png: Path) -> None:
    with Image.open(stamp_variants["png16"]) as im:
        assert im.mode.startswith("I")
    img = load_image(stamp_variants["png16"])
    grey8 = np.asarray(Image.open(badger_png).convert("RGBA").convert("L"))
    assert img.shape == (75, 191, 3)
    assert np.abs(img[..., 0].astype(int) - grey8).max() <= 1
    assert np.array_equal(img[..., 0], img[..., 2])


def test_gif_palette_with_transparency(stamp_variants: dict[str, Path], badger_rgba: np.ndarray) -> None:
    with Image.open(stamp_variants["gif"]) as im:
        assert im.mode == "P" and "transparency" in im.info
    img = load_image(stamp_variants["gif"])
    assert img.shape == (75, 191, 3)
    clear = badger_rgba[..., 3] == 0
    assert (img[clear] == 255).all(axis=-1).mean() > 0.95
    opaque = badger_rgba[..., 3] == 255
    assert np.abs(img[opaque].astype(int) - badger_rgba[..., :3][opaque]).mean() < 12  # palette quantisation


def test_animated_gif_first_frame(media_tmp: Path) -> None:
    path = media_tmp / "anim.gif"
    red, blue = Image.new("RGB", (32, 16), (255, 0, 0)), Image.new("RGB", (32, 16), (0, 0, 255))
    red.save(path, save_all=True, append_images=[blue], duration=100, loop=0)
    img = load_image(path)
    assert img.shape == (16, 32, 3) and tuple(img[8, 16]) == (255, 0, 0)


def test_tiff(stamp_variants: dict[str, Path], badger_png: Path) -> None:
    img = load_image(stamp_variants["tiff"])
    assert np.array_equal(img, np.asarray(Image.open(badger_png).convert("RGB")))


def test_exif_orientation_applied(stamp_variants: dict[str, Path], badger_png: Path) -> None:
    img = load_image(stamp_variants["jpeg_exif6"])
    assert img.shape == (191, 75, 3)
    upright = np.asarray(Image.open(badger_png).convert("RGB")).astype(int)
    turned = np.rot90(upright, k=-1)  # orientation 6 = rotate 90 degrees clockwise for display
    assert np.abs(img.astype(int) - turned).mean() < 6  # JPEG loss only
    assert np.abs(img.astype(int) - np.rot90(upright, k=1)).mean() > 20


def test_max_side(badger_png: Path) -> None:
    img = load_image(badger_png, max_side=64)
    assert img.shape == (25, 64, 3)
    assert load_image(badger_png, max_side=4096).shape == (75, 191, 3)  # never enlarged


def test_truncated_png_is_corrupt(media_tmp: Path, badger_png: Path) -> None:
    path = media_tmp / "cut.png"
    path.write_bytes(badger_png.read_bytes()[:2000])
    with pytest.raises(CorruptMediaError, match="cut.png"):
        load_image(path)
