"""Preprocessing for SV3D: the object ends up centred, at the documented frame ratio, on white."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.errors import KeyDiffError
from backend.views.preprocess import DEFAULT_FRAME_RATIO, has_rembg, prepare_image


def rgba_with_box(width, height, box, colour=(200, 30, 30)) -> Image.Image:
    """A transparent image with one opaque rectangle (x0, y0, x1, y1)."""
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = [*colour, 255]
    return Image.fromarray(pixels)


def alpha_centroid(alpha: np.ndarray) -> tuple[float, float]:
    yy, xx = np.mgrid[: alpha.shape[0], : alpha.shape[1]] + 0.5
    return float((alpha * xx).sum() / alpha.sum()), float((alpha * yy).sum() / alpha.sum())


def test_an_off_centre_rgba_object_comes_out_centred_at_the_frame_ratio_on_white():
    image = rgba_with_box(400, 300, (250, 50, 370, 110))  # 120 × 60 px, far top-right
    prepared = prepare_image(image, size=576)
    cx, cy = alpha_centroid(prepared.alpha)
    assert cx == pytest.approx(288, abs=0.5) and cy == pytest.approx(288, abs=0.5)
    cols = np.flatnonzero(prepared.mask.any(axis=0))
    rows = np.flatnonzero(prepared.mask.any(axis=1))
    assert (cols[-1] - cols[0] + 1) / 576 == pytest.approx(DEFAULT_FRAME_RATIO, abs=2 / 576)
    assert (rows[-1] - rows[0] + 1) / 576 == pytest.approx(DEFAULT_FRAME_RATIO / 2, abs=2 / 576)
    assert prepared.rgb.shape == (576, 576, 3) and prepared.rgb.dtype == np.uint8
    assert (prepared.rgb[~prepared.mask & (prepared.alpha == 0)] == 255).all()  # white background
    assert tuple(prepared.rgb[288, 288]) == (200, 30, 30)
    assert prepared.background == "alpha" and prepared.bbox == (250, 50, 120, 60)


def test_a_tall_object_fills_the_ratio_along_its_longer_side():
    prepared = prepare_image(rgba_with_box(200, 500, (20, 100, 60, 420)), size=576, frame_ratio=0.8)
    rows = np.flatnonzero(prepared.mask.any(axis=1))
    assert (rows[-1] - rows[0] + 1) / 576 == pytest.approx(0.8, abs=2 / 576)


def test_the_hidden_colour_of_transparent_pixels_does_not_bleed_into_the_edges():
    pixels = np.zeros((64, 64, 4), dtype=np.uint8)
    pixels[..., 1] = 255  # fully transparent but green
    pixels[20:44, 20:44] = [255, 255, 255, 255]  # a white square
    prepared = prepare_image(Image.fromarray(pixels), size=128)
    assert prepared.rgb[..., 1].min() >= 250 and prepared.rgb[..., 0].min() >= 250  # no green or magenta fringe


def test_an_image_without_alpha_needs_rembg_and_says_so():
    if has_rembg():
        pytest.skip("rembg is installed here")
    with pytest.raises(KeyDiffError) as err:
        prepare_image(Image.new("RGB", (64, 64), (10, 20, 30)))
    assert err.value.code == "missing_dependency" and "pip install rembg" in err.value.message


def test_unusable_images_raise_clear_errors(tmp_path):
    with pytest.raises(KeyDiffError) as err:
        prepare_image(Image.fromarray(np.zeros((32, 32, 4), dtype=np.uint8)))
    assert err.value.code == "invalid_image" and "alpha is zero everywhere" in err.value.message
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(KeyDiffError) as err:
        prepare_image(broken)
    assert err.value.code == "invalid_image"
    with pytest.raises(KeyDiffError) as err:
        prepare_image(tmp_path / "missing.png")
    assert err.value.code == "unreadable_file"
    with pytest.raises(KeyDiffError) as err:
        prepare_image(rgba_with_box(32, 32, (4, 4, 8, 8)), frame_ratio=1.5)
    assert err.value.code == "invalid_argument" and "frame_ratio=1.5" in err.value.message


def test_a_png_file_on_disk_goes_through_the_same_path(tmp_path):
    path = tmp_path / "cutout.png"
    rgba_with_box(100, 80, (10, 10, 30, 70)).save(path)
    prepared = prepare_image(path, size=64)
    cx, cy = alpha_centroid(prepared.alpha)
    assert cx == pytest.approx(32, abs=0.5) and cy == pytest.approx(32, abs=0.5)
