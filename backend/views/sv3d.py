"""`keydiff3d generate`: one photo → 21 SV3D-p orbit views, masks, cameras and decoder features.

Entry point for the CLI and for training/prepare.py: `run_generate(image_path, out_dir, ...)`.
Output folder (written to a temporary sibling and renamed into place, so a failed run leaves nothing):

    views/                 the ViewSet layout (backend/views/viewset.py): 000.png … 020.png on white,
                           000_mask.png …, cameras.json (our orbit cameras; frame 20 = the input view)
    features.safetensors   decoder features of the chosen views (backend/views/sv3d_features.py)
    generate.json          settings, weights source, orbit self-check, timings (and peak VRAM on CUDA)

Masks: frame 20 is the input itself, so its mask is the input's alpha; SV3D paints the other frames on
white, so their masks are "visibly not white" (any channel below `WHITE_THRESHOLD`), holes filled, specks
smaller than 1 % of the largest part dropped.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from backend.cameras import (
    AZIMUTH_SENSE, DEFAULT_FOV_DEG, DEFAULT_IMAGE_SIZE, DEFAULT_RADIUS, ORBIT_FRAMES, orbit_azimuths_deg, orbit_cameras,
)
from backend.atomic import atomic_output_folder, check_replaceable
from backend.errors import KeyDiffError
from backend.views.orbit_check import OrbitCheck, check_orbit_sense
from backend.views.preprocess import DEFAULT_FRAME_RATIO, Background, prepare_image
from backend.views.sv3d_conditioning import orbit_polars_azimuths
from backend.views.sv3d_features import FEATURES_FILENAME
from backend.views.sv3d_models import SV3DModels, load_sv3d_models
from backend.views.sv3d_sampler import (
    DEFAULT_DECODE_CHUNK,
    DEFAULT_STEPS,
    DEFAULT_TAU,
    FeatureRequest,
    Progress,
    as_progress_callback,
    default_feature_frames,
    sample_orbit,
)
from backend.views.viewset import ViewSet

WHITE_THRESHOLD = 235  # a pixel is object when some channel is below this (8-bit)
GENERATE_FORMAT = "keydiff3d.generate"
GENERATE_VERSION = 1


@dataclass(frozen=True)
class GenerateResult:
    out_dir: Path
    views: ViewSet
    features_path: Path | None
    orbit_check: OrbitCheck | None
    seconds: float


def white_background_masks(images: np.ndarray) -> np.ndarray:  # [N, H, W] bool
    """Object masks of views painted on white (see module doc)."""
    fg = (np.asarray(images) < WHITE_THRESHOLD).any(axis=-1)  # [N, H, W]
    out = np.zeros_like(fg)
    for n in range(len(fg)):  # per view (21), each step vectorised
        filled = ndimage.binary_fill_holes(fg[n])
        labels, count = ndimage.label(filled)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]  # [count]
        keep = np.flatnonzero(sizes >= 0.01 * sizes.max()) + 1
        out[n] = np.isin(labels, keep)
    return out


def run_generate(
    image_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    steps: int = DEFAULT_STEPS,
    elevation: float = 10.0,
    seed: int = 0,
    device: str | None = None,
    progress: Progress | object | None = None,
    feature_views: int = 4,
    tau: float = DEFAULT_TAU,
    radius: float = DEFAULT_RADIUS,
    frame_ratio: float = DEFAULT_FRAME_RATIO,
    background: Background = "auto",
    offload: bool = False,
    forward_chunking: bool = False,
    attention_slice: int | None = None,
    decode_chunk: int = DEFAULT_DECODE_CHUNK,
    check_orbit: bool = True,
    models: SV3DModels | None = None,
) -> GenerateResult:
    """Generate the orbit views and features of one photo into `out_dir` (layout in the module doc).

    weights: a diffusers-layout folder or hub id (default: $KEYDIFF3D_SV3D_WEIGHTS, else
    chenguolin/sv3d-diffusers); ignored when `models` is given (prepare.py loads once for many photos).
    feature_views: how many views get decoder features (input + evenly spread; 0 = none).
    Memory savers for small GPUs (docs/sv3d.md, "VRAM"): offload (only the running model on the GPU),
    forward_chunking, attention_slice (heads per slice), decode_chunk (frames per VAE decode, sgm's
    decoding_t; 1-4 on 12-16 GB cards).
    progress: a `backend.progress` object (its `.stage(name, fraction, message)` is called) or a plain
    callable (stage, fraction, message); stages: load, preprocess, encode, denoise, decode, check, write.
    """
    started = time.perf_counter()
    report = as_progress_callback(progress)
    out_dir = Path(out_dir)
    if not -90.0 < float(elevation) < 90.0:
        raise KeyDiffError("invalid_argument", f"elevation={elevation}; expected degrees in (-90, 90), SV3D default 10")
    if feature_views < 0:
        raise KeyDiffError("invalid_argument", f"feature_views={feature_views}; expected 0 or more")
    check_replaceable(out_dir.expanduser().absolute(), "generate.json", "generate output")
    # Read and check the photo before loading 9 GB of weights: a bad image must fail in a second, not a minute.
    report("preprocess", 0.0, f"checking {Path(image_path).name}")
    prepared = prepare_image(image_path, size=DEFAULT_IMAGE_SIZE, frame_ratio=frame_ratio, background=background)

    if models is None:
        report("load", 0.0, "loading SV3D-p")
        models = load_sv3d_models(
            weights, device=device, offload=offload, forward_chunking=forward_chunking, attention_slice=attention_slice
        )
    if models.num_frames != ORBIT_FRAMES:
        raise KeyDiffError(
            "missing_weights", f"the UNet is configured for {models.num_frames} frames; SV3D-p makes {ORBIT_FRAMES}"
        )
    image_size = int(models.unet.config.sample_size) * models.vae_factor  # 72 · 8 = 576 for SV3D-p

    if image_size != DEFAULT_IMAGE_SIZE:   # tiny test models work at a smaller size
        prepared = prepare_image(image_path, size=image_size, frame_ratio=frame_ratio, background=background)

    polars, azimuths = orbit_polars_azimuths(orbit_azimuths_deg(ORBIT_FRAMES), float(elevation))
    request = None
    if feature_views:
        request = FeatureRequest(frames=default_feature_frames(feature_views, ORBIT_FRAMES), tau=float(tau))
    if models.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(models.device)
    sample = sample_orbit(
        models,
        prepared.to_tensor(),
        polars,
        azimuths,
        steps=steps,
        seed=seed,
        features=request,
        decode_chunk=decode_chunk,
        progress=report,
    )

    images = (sample.frames.permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)  # [F, S, S, 3]
    images[-1] = prepared.rgb  # exactly the input pixels, no float round trip
    masks = white_background_masks(images)
    masks[-1] = prepared.mask
    cameras = orbit_cameras(image_size=image_size, radius=radius, elevation_deg=float(elevation), fov_deg=DEFAULT_FOV_DEG)
    views = ViewSet(images=images, masks=masks, cameras=cameras, frames=np.arange(ORBIT_FRAMES))

    check = None
    if check_orbit:
        report("check", 0.0, "checking the orbit's azimuth sense")
        if masks.reshape(len(masks), -1).any(axis=1).all():
            check = check_orbit_sense(masks, list(range(ORBIT_FRAMES)), elevation_deg=float(elevation), radius=radius)
            report("check", 1.0, check.message())
            if check.configured_loses:
                import logging

                logging.getLogger(__name__).warning(check.message())

    report("write", 0.0, f"writing {out_dir}")
    with atomic_output_folder(out_dir, marker="generate.json", what="generate output") as tmp:
        views.save(tmp / "views")
        features_path = None
        if sample.features is not None:
            sample.features.save(tmp / FEATURES_FILENAME)
            features_path = out_dir / FEATURES_FILENAME
        seconds = time.perf_counter() - started
        summary = {
            "format": GENERATE_FORMAT,
            "version": GENERATE_VERSION,
            "input": str(Path(image_path).resolve()),
            "weights": models.source,
            "settings": {
                "steps": steps,
                "elevation_deg": float(elevation),
                "seed": seed,
                "tau": float(tau),
                "feature_frames": list(request.frames) if request else [],
                "radius": radius,
                "fov_deg": DEFAULT_FOV_DEG,
                "azimuth_sense": AZIMUTH_SENSE,
                "frame_ratio": frame_ratio,
                "background": prepared.background,
                "image_size": image_size,
                "decode_chunk": decode_chunk,
                "offload": models.offload,
                "device": str(models.device),
                "dtype": str(models.dtype).replace("torch.", ""),
            },
            "orbit_check": check.to_dict() if check else None,
            "seconds": round(seconds, 3),
            "peak_vram_gb": (
                round(torch.cuda.max_memory_allocated(models.device) / 1e9, 3) if models.device.type == "cuda" else None
            ),
            "machine": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()},
        }
        (tmp / "generate.json").write_text(json.dumps(summary, indent=1))
    report("write", 1.0, f"wrote {out_dir}")
    return GenerateResult(
        out_dir=out_dir,
        views=views,
        features_path=features_path,
        orbit_check=check,
        seconds=seconds,
    )
