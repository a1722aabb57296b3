"""SV3D-p conditioning, exactly as Stability's sgm sampling script builds it.

Three inputs steer SV3D-p besides the noisy latent (reference/sv3d.md §1.2-1.5):
- the *camera vector*, one per frame: cat[Timestep256(cond_aug), Timestep512(polar), Timestep512(azimuth)]
  (1280 wide for the real model), cosine before sine, the same in the conditional and unconditional branch;
- the CLIP image embedding of the clean input (cross-attention context), zeros in the unconditional branch;
- the *unscaled* VAE latent (posterior mode) of the input plus 1e-5 pixel noise, concatenated after the
  noisy latent, zeros in the unconditional branch.
Guidance is per frame with the sgm "triangle": 1.0 at the first and last frame, the maximum in the middle.

The widths follow the UNet's `addition_time_embed_dim` d: d for cond_aug and 2·d for each angle, so a tiny
test model with d=8 has the same layout as the real one with d=256.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import Timesteps

from backend.errors import KeyDiffError

# sgm simple_video_sample.py hard-sets cond_aug for both SV3D variants.
SV3D_COND_AUG = 1e-5
# sgm TrianglePredictionGuider(max_scale=2.5) for sv3d_p; min_scale defaults to 1.0.
SV3D_MAX_GUIDANCE = 2.5
SV3D_MIN_GUIDANCE = 1.0
# Open-CLIP ViT-H-14 image normalisation (FrozenOpenCLIPImageEmbedder.preprocess; same values as the SVD
# release's feature_extractor/preprocessor_config.json).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def camera_vector(
    polars_rad: torch.Tensor,  # [F]
    azimuths_rad: torch.Tensor,  # [F]
    *,
    addition_time_embed_dim: int,
    cond_aug: float = SV3D_COND_AUG,
) -> torch.Tensor:  # [F, 5·d]
    """The per-frame vector that SV3D-p's `add_embedding` (sgm `label_emb`) takes.

    diffusers' `Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)` is sgm's `timestep_embedding`
    (max period 10000, [cos, sin]); a 512-wide embedding is not two 256-wide ones, hence our own vector
    instead of the stock pipeline's `added_time_ids`.
    """
    polars = torch.as_tensor(polars_rad, dtype=torch.float32).reshape(-1)
    azimuths = torch.as_tensor(azimuths_rad, dtype=torch.float32).reshape(-1)
    if polars.shape != azimuths.shape:
        raise KeyDiffError(
            "invalid_argument",
            f"got {polars.numel()} polar angles and {azimuths.numel()} azimuths; expected one of each per frame",
        )
    if not (torch.isfinite(polars).all() and torch.isfinite(azimuths).all()):
        raise KeyDiffError("invalid_argument", "camera angles contain NaN or inf; expected finite radians")
    d = int(addition_time_embed_dim)
    aug_embed = Timesteps(d, True, 0)(torch.full_like(polars, float(cond_aug)))  # [F, d]
    angle_proj = Timesteps(2 * d, True, 0)
    return torch.cat([aug_embed, angle_proj(polars), angle_proj(azimuths)], dim=1)  # [F, 5d]


def triangle_guidance(
    num_frames: int, max_scale: float = SV3D_MAX_GUIDANCE, min_scale: float = SV3D_MIN_GUIDANCE
) -> torch.Tensor:  # [F]
    """sgm's TrianglePredictionGuider with period 1: min at both ends, max in the middle, linear between.

    (chenguolin/sv3d-diffusers uses a shifted triangle that peaks at frame 9 and starts at 1.15; we follow
    the original.)
    """
    if num_frames < 1:
        raise KeyDiffError("invalid_argument", f"num_frames={num_frames}; expected at least 1")
    v = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)
    scale = min_scale + (max_scale - min_scale) * 2.0 * (v - torch.floor(v + 0.5)).abs()
    return scale.to(torch.float32)


def clip_pixels(image: torch.Tensor, size: int) -> torch.Tensor:  # [B, 3, size, size]
    """The CLIP encoder's input from an image in [-1, 1] (B, 3, H, W), as the SVD pipeline and sgm do it:
    anti-aliased bicubic resize in [-1, 1], then (x+1)/2, then CLIP normalisation."""
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
        _resize_with_antialiasing,
    )

    resized = _resize_with_antialiasing(image.float(), (size, size))
    unit = ((resized + 1.0) / 2.0).clamp(0.0, 1.0)
    mean = torch.tensor(CLIP_MEAN, dtype=unit.dtype, device=unit.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=unit.dtype, device=unit.device).view(1, 3, 1, 1)
    return (unit - mean) / std


def orbit_polars_azimuths(
    azimuths_deg: list[float] | torch.Tensor, elevations_deg: float | list[float] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:  # ([F], [F]) radians
    """SV3D's conditioning angles from orbit azimuths and elevations in degrees (sgm convention).

    polar = 90° − elevation; azimuths are re-expressed relative to the last frame (the input view) and
    wrapped to [0°, 360°), exactly as `simple_video_sample.py` does.
    """
    azimuths = torch.as_tensor(azimuths_deg, dtype=torch.float64).reshape(-1)
    elevations = torch.as_tensor(elevations_deg, dtype=torch.float64).reshape(-1)
    if elevations.numel() == 1:
        elevations = elevations.expand(azimuths.numel())
    if elevations.numel() != azimuths.numel():
        raise KeyDiffError(
            "invalid_argument",
            f"got {elevations.numel()} elevations for {azimuths.numel()} azimuths; expected 1 or one per frame",
        )
    if ((elevations < -90) | (elevations > 90)).any():
        raise KeyDiffError("invalid_argument", f"elevation {elevations.tolist()} out of range; expected -90..90 degrees")
    polars = torch.deg2rad(90.0 - elevations)
    relative = torch.remainder(azimuths - azimuths[-1], 360.0)
    return polars.to(torch.float32), torch.deg2rad(relative).to(torch.float32)


__all__ = [
    "SV3D_COND_AUG",
    "SV3D_MAX_GUIDANCE",
    "camera_vector",
    "clip_pixels",
    "orbit_polars_azimuths",
    "triangle_guidance",
]

