"""One photo → the 576-px, object-centred, white-background image SV3D-p was trained on, plus its mask.

Steps (sgm `simple_video_sample.py`, sv3d branch, with SV4D's frame ratio):
1. The object mask: the image's own alpha when it has a real one (some pixel not opaque); otherwise an
   optional background remover (rembg) — a clear `missing_dependency` error when it is not installed.
2. The bounding box of alpha > 0.
3. The box pasted centred on a square canvas of side max(w, h) / frame_ratio, so the object's longer side
   fills `frame_ratio` of the frame. sgm's SV3D script leaves the ratio unset (no rescale); its SV4D scripts
   use 0.917, which we adopt as `DEFAULT_FRAME_RATIO`: SV3D then sees objects at a consistent scale whatever
   the photo's framing, and with our orbit (radius 2, FOV 33.8°, ±0.61 m visible at the origin) the object
   spans about ±0.56 m, inside the ±0.6 m keypoint cube.
4. LANCZOS resize to `size` (576) and composite on white: rgb·α + (1 − α).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from backend.errors import KeyDiffError

DEFAULT_FRAME_RATIO = 0.917
DEFAULT_SIZE = 576
MAX_INPUT_PIXELS = 64_000_000  # refuse decompression bombs with a clear message

Background = Literal["auto", "alpha", "rembg"]


@dataclass(frozen=True)
class PreparedImage:
    """The model input and what the rest of the pipeline needs to know about it."""

    rgb: np.ndarray  # [S, S, 3] uint8, object centred on white
    alpha: np.ndarray  # [S, S] float32 in [0, 1] (resized alpha)
    mask: np.ndarray  # [S, S] bool, alpha > 0.5
    bbox: tuple[int, int, int, int]  # (x, y, w, h) of the object in the original image
    frame_ratio: float
    background: str  # "alpha" or "rembg": where the mask came from

    def to_tensor(self):
        """[3, S, S] float32 in [0, 1] (torch), the form the sampler takes."""
        import torch

        return torch.from_numpy(self.rgb).permute(2, 0, 1).float() / 255.0


def has_rembg() -> bool:
    """Capability probe: is the optional background remover installed?"""
    import importlib.util

    return importlib.util.find_spec("rembg") is not None


def _open(image: str | os.PathLike | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    path = Path(image)
    if not path.is_file():
        raise KeyDiffError("unreadable_file", f"image {str(path)!r} does not exist or is not a file")
    try:
        with Image.open(path) as handle:
            if handle.width * handle.height > MAX_INPUT_PIXELS:
                raise KeyDiffError(
                    "invalid_image",
                    f"image {str(path)!r} is {handle.width}x{handle.height} px; expected at most {MAX_INPUT_PIXELS:,} pixels",
                )
            handle.load()
            return handle.copy()
    except KeyDiffError:
        raise
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise KeyDiffError("invalid_image", f"image {str(path)!r} cannot be decoded ({exc})") from exc


def _remove_background(image: Image.Image) -> Image.Image:
    if not has_rembg():
        raise KeyDiffError(
            "missing_dependency",
            "the image has no transparent background and rembg is not installed; either `pip install rembg` "
            "or give an RGBA PNG whose alpha marks the object",
        )
    import rembg  # optional dependency

    image = image.convert("RGB")
    image.thumbnail((768, 768))  # sgm does this before rembg
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    out = rembg.remove(buffer.getvalue(), alpha_matting=True)
    return Image.open(io.BytesIO(out)).convert("RGBA")


MIN_INPUT_SIDE = 32   # below this there is no object to see, let alone rig


def prepare_image(
    image: str | os.PathLike | Image.Image,
    *,
    size: int = DEFAULT_SIZE,
    frame_ratio: float = DEFAULT_FRAME_RATIO,
    background: Background = "auto",
) -> PreparedImage:
    """Centre the object at `frame_ratio` on a white `size`-px square (see module doc for the steps).

    background: "auto" uses a real alpha channel when present, else rembg; "alpha" requires the alpha
    channel; "rembg" always runs the remover.
    """
    if not (0.05 <= frame_ratio <= 1.0):
        raise KeyDiffError("invalid_argument", f"frame_ratio={frame_ratio}; expected a fraction in [0.05, 1]")
    if int(size) != size or not 16 <= size <= 4096:
        raise KeyDiffError("invalid_argument", f"size={size}; expected an integer number of pixels in [16, 4096]")
    if background not in ("auto", "alpha", "rembg"):
        raise KeyDiffError("invalid_argument", f"background={background!r}; expected 'auto', 'alpha' or 'rembg'")

    img = _open(image)
    if min(img.width, img.height) < MIN_INPUT_SIDE:
        raise KeyDiffError(
            "invalid_image", f"image is {img.width}x{img.height} px; expected at least {MIN_INPUT_SIDE} px on each side"
        )
    if img.mode.startswith("I"):
        # 16/32-bit greyscale: PIL's convert() clips to 0..255; scale the real range down instead
        values = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or values.max() <= 65535 else values.max()
        img = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    rgba = img.convert("RGBA")
    alpha_u8 = np.asarray(rgba)[..., 3]  # [H, W]
    real_alpha = has_alpha and bool((alpha_u8 < 255).any())
    if background == "alpha" and not real_alpha:
        raise KeyDiffError("invalid_image", "background='alpha' but the image has no transparent pixels; expected an RGBA cut-out")
    if background == "rembg" or (background == "auto" and not real_alpha):
        rgba, source = _remove_background(img), "rembg"
    else:
        source = "alpha"

    pixels = np.asarray(rgba)  # [H, W, 4] uint8
    ys, xs = np.nonzero(pixels[..., 3] > 0)
    if len(xs) == 0:
        raise KeyDiffError("invalid_image", "the image's alpha is zero everywhere; expected an object with opaque pixels")
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    w, h = x1 - x0, y1 - y0
    side = max(w, h) / frame_ratio  # float: the canvas side in source pixels

    # Straight alpha must not bleed the hidden colour of transparent pixels into the resize: premultiply.
    crop = pixels[y0:y1, x0:x1].astype(np.float32) / 255.0  # [h, w, 4]
    crop[..., :3] *= crop[..., 3:]
    pad = int(np.ceil(side / 2.0)) + 2
    padded = np.pad(crop, ((pad, pad), (pad, pad), (0, 0)))  # transparent black margin
    cx, cy = pad + w / 2.0, pad + h / 2.0
    # A float source box centres the object exactly (no integer paste offset) and keeps the exact ratio.
    box = (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(padded[..., c])).resize((size, size), Image.LANCZOS, box=box))
        for c in range(4)
    ]
    premul = np.clip(np.stack(channels[:3], axis=-1), 0.0, 1.0)  # [S, S, 3]
    alpha = np.clip(channels[3], 0.0, 1.0)  # [S, S]
    rgb = premul + (1.0 - alpha[..., None])  # composite on white
    return PreparedImage(
        rgb=np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8),
        alpha=alpha.astype(np.float32),
        mask=alpha > 0.5,
        bbox=(x0, y0, w, h),
        frame_ratio=float(frame_ratio),
        background=source,
    )
