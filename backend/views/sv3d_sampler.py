"""SV3D-p sampling: one image → an orbit of frames, with decoder features caught on the way.

The loop is sgm's `EulerEDMSampler` + `TrianglePredictionGuider` expressed with diffusers'
`EulerDiscreteScheduler` (SVD settings: continuous v-prediction, Karras σ 0.002..700, which give sgm's c_in,
c_noise = 0.25·ln σ, c_skip/c_out and initial noise scale). Per step:

    x_in   = scale_model_input([x, x])                      # [2, F, 4, h, w], uncond then cond
    v      = UNet(cat(x_in, [0, z_cond]), t, [0, clip], camera vector per frame)
    v      = v_u + s_f · (v_c − v_u)                         # triangle scale s_f per frame
    x      = scheduler.step(v, t, x)

CFG on v equals sgm's CFG on the denoised x0 because x0 is affine in v with the same c_skip·x term in both
branches. After the loop the latents are decoded in chunks and the last frame is replaced by the input, as
in sgm's script.

Feature time: the paper denoises from t = T = 1000 down to τ = 500 and caches decoder features there. Our
sampler is continuous in σ, so τ is mapped to the noise level of DDPM step τ in the model's training schedule
(scaled-linear betas): σ(τ) = sqrt((1 − ᾱ_τ)/ᾱ_τ) ≈ 1.62 for τ = 500, and features are caught at the
sampler step whose σ is nearest in log-space (step 34 of 50). This keeps the noise level fixed whatever
`steps` is; it is our reading, not a documented one (docs/sv3d.md).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from backend.errors import KeyDiffError
from backend.views.sv3d_conditioning import (
    SV3D_COND_AUG,
    SV3D_MAX_GUIDANCE,
    camera_vector,
    clip_pixels,
    triangle_guidance,
)
from backend.views.sv3d_features import DecoderTaps, SV3DFeatures, decoder_tap_names
from backend.views.sv3d_models import SV3DModels
from backend.views.sv3d_unet import sv3d_unet_forward

DEFAULT_TAU = 500.0
DEFAULT_STEPS = 50
# Frames per VAE decode. sgm's decoding_t is 14, but the fp32 SD decoder needs about 0.9 GB per 576-px frame
# (benchmarks/results/sv3d.json), so 14 frames peak near 13 GB; 4 keeps it near 4 GB at little cost in speed.
DEFAULT_DECODE_CHUNK = 4

Progress = Callable[[str, float, str], None]  # (stage, fraction in [0, 1], message)


def as_progress_callback(progress) -> Progress:
    """Accept a `backend.progress` object (with `.stage(name, fraction, message)`), a callable, or None."""
    if progress is None:
        return lambda stage, fraction, message: None
    if hasattr(progress, "stage"):
        return lambda stage, fraction, message: progress.stage(stage, fraction, message)
    return progress


@dataclass(frozen=True)
class FeatureRequest:
    """Which views' decoder features to keep, and at which noise level."""

    frames: tuple[int, ...]  # orbit frame indices, e.g. (20, 4, 9, 14)
    tau: float = DEFAULT_TAU  # DDPM-equivalent timestep in [0, num_train_timesteps)


@dataclass
class OrbitSample:
    """What one sampling run produced."""

    frames: torch.Tensor  # [F, 3, H, W] float32 in [0, 1]; the last frame is the input image
    latents: torch.Tensor  # [F, 4, h, w] float32, the final (scaled) latents
    camera_vectors: torch.Tensor  # [F, 5d] the per-frame add_embedding input used
    guidance: torch.Tensor  # [F] the per-frame CFG scale used
    sigmas: torch.Tensor  # [steps + 1] the sampler's noise levels (last 0)
    features: SV3DFeatures | None


def sigma_for_tau(scheduler, tau: float) -> float:
    """The noise level of DDPM step `tau` in the scheduler's training schedule: sqrt((1 − ᾱ)/ᾱ)."""
    alphas = scheduler.alphas_cumprod.to(torch.float64)  # [T]
    if not 0 <= tau <= len(alphas) - 1:
        raise KeyDiffError("invalid_argument", f"feature timestep tau={tau}; expected 0..{len(alphas) - 1}")
    lo = int(math.floor(tau))
    hi = min(lo + 1, len(alphas) - 1)
    a = alphas[lo] + (alphas[hi] - alphas[lo]) * (tau - lo)
    return float(((1.0 - a) / a).sqrt())


def capture_step(sigmas: torch.Tensor, sigma: float) -> int:
    """Index of the sampler step whose input noise level is nearest `sigma` (log scale; final 0 excluded)."""
    levels = sigmas[:-1].double().clamp_min(1e-12).log()
    return int((levels - math.log(sigma)).abs().argmin())


def default_feature_frames(num_views: int = 4, num_frames: int = 21) -> tuple[int, ...]:
    """The input view (last frame) plus num_views − 1 frames evenly spaced in frame index around the orbit.

    Frame i < F−1 sits at azimuth 360/F·(i+1); view k takes frame floor(k·F/num_views) − 1. For 4 views of 21:
    (20, 4, 9, 14) at 0°, 85.7°, 171.4°, 257.1° — the views the keypoint network is trained on
    (backend.keypoints.DEFAULT_VIEW_INDICES), so SV3D features and mesh renders feed it the same cameras.
    """
    if not 1 <= num_views <= num_frames:
        raise KeyDiffError("invalid_argument", f"num_views={num_views}; expected 1..{num_frames}")
    return (num_frames - 1,) + tuple(k * num_frames // num_views - 1 for k in range(1, num_views))


def _check_image(image: torch.Tensor, factor: int) -> torch.Tensor:
    if image.ndim != 3 or image.shape[0] != 3:
        raise KeyDiffError("invalid_image", f"image tensor has shape {tuple(image.shape)}; expected [3, H, W] RGB")
    h, w = image.shape[-2:]
    if h != w or h % factor:
        raise KeyDiffError(
            "invalid_image", f"image is {w}x{h} px; expected a square whose side is a multiple of {factor} (576 for SV3D)"
        )
    if not torch.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise KeyDiffError("invalid_image", "image values must be finite and in [0, 1]")
    return image.float()


@torch.no_grad()
def sample_orbit(
    models: SV3DModels,
    image: torch.Tensor,  # [3, H, W] float in [0, 1], object on white (see preprocess.prepare_image)
    polars_rad: torch.Tensor | Sequence[float],  # [F]
    azimuths_rad: torch.Tensor | Sequence[float],  # [F] relative to the last frame (the input view)
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    cond_aug: float = SV3D_COND_AUG,
    max_guidance: float = SV3D_MAX_GUIDANCE,
    features: FeatureRequest | None = None,
    decode_chunk: int = DEFAULT_DECODE_CHUNK,
    progress: Progress | object | None = None,
) -> OrbitSample:
    """Generate one orbit video with SV3D-p; see the module doc for the loop. Deterministic for a seed."""
    if steps < 1:
        raise KeyDiffError("invalid_argument", f"steps={steps}; expected at least 1")
    if decode_chunk < 1:
        raise KeyDiffError("invalid_argument", f"decode_chunk={decode_chunk}; expected at least 1")
    image = _check_image(image, models.vae_factor)
    device, dtype = models.device, models.dtype
    polars = torch.as_tensor(polars_rad, dtype=torch.float32).reshape(-1)
    azimuths = torch.as_tensor(azimuths_rad, dtype=torch.float32).reshape(-1)
    num_frames = azimuths.numel()
    if features is not None:
        bad = [f for f in features.frames if not 0 <= f < num_frames]
        if bad or not features.frames:
            raise KeyDiffError("invalid_argument", f"feature frames {list(features.frames)}; expected indices in 0..{num_frames - 1}")
    vectors = camera_vector(polars, azimuths, addition_time_embed_dim=models.camera_embed_dim, cond_aug=cond_aug)
    report = as_progress_callback(progress)
    generator = torch.Generator("cpu").manual_seed(int(seed))

    # Conditioning (sgm: CLIP sees the clean image, the VAE the image plus cond_aug pixel noise).
    pixels = image[None] * 2.0 - 1.0  # [1, 3, H, W] in [-1, 1]
    report("encode", 0.0, "encoding the input image")
    encoder = models.place(models.image_encoder)
    clip_embeds = encoder(clip_pixels(pixels, models.clip_size).to(device, dtype)).image_embeds  # [1, D]
    clip_embeds = clip_embeds[:, None].to(dtype)  # [1, 1, D]
    vae = models.place(models.vae)
    noisy = pixels + cond_aug * torch.randn(pixels.shape, generator=generator)
    cond_latent = vae.encode(noisy.to(device, vae.dtype)).latent_dist.mode()  # [1, 4, h, w], unscaled
    cond_latent = cond_latent.to(dtype)[:, None].expand(1, num_frames, *cond_latent.shape[1:])  # [1, F, 4, h, w]

    guidance = triangle_guidance(num_frames, max_guidance)  # [F]
    use_cfg = bool(guidance.max() > 1.0)
    batch = 2 if use_cfg else 1
    added = vectors[None].expand(batch, -1, -1).to(device, dtype)  # [B, F, 5d], same for uncond and cond
    context = torch.cat([torch.zeros_like(clip_embeds), clip_embeds]) if use_cfg else clip_embeds  # [B, 1, D]
    concat = torch.cat([torch.zeros_like(cond_latent), cond_latent]) if use_cfg else cond_latent  # [B, F, 4, h, w]
    scale = guidance.view(1, num_frames, 1, 1, 1).to(device, torch.float32)

    scheduler = models.scheduler
    scheduler.set_timesteps(steps, device=device)
    sigmas = scheduler.sigmas.detach().cpu()
    latent_size = image.shape[-1] // models.vae_factor
    shape = (1, num_frames, models.unet.config.out_channels, latent_size, latent_size)
    latents = (torch.randn(shape, generator=generator) * scheduler.init_noise_sigma).to(device, torch.float32)

    unet = models.place(models.unet)
    taps, target_step = None, -1
    if features is not None:
        target_step = capture_step(sigmas, sigma_for_tau(scheduler, features.tau))
        taps = DecoderTaps(unet, features.frames, batch_index=batch - 1, num_frames=num_frames)
    with taps if taps is not None else nullcontext():
        for i, t in enumerate(scheduler.timesteps):
            model_in = scheduler.scale_model_input(torch.cat([latents] * batch), t)  # [B, F, 4, h, w]
            model_in = torch.cat([model_in.to(dtype), concat], dim=2)  # [B, F, 8, h, w]
            if taps is not None:
                taps.armed = i == target_step
            v = sv3d_unet_forward(unet, model_in, t, context, added).float()  # [B, F, 4, h, w]
            if use_cfg:
                v_uncond, v_cond = v.chunk(2)
                v = v_uncond + scale * (v_cond - v_uncond)
            latents = scheduler.step(v, t, latents).prev_sample
            report("denoise", (i + 1) / steps, f"step {i + 1}/{steps}")

    captured = None
    if taps is not None:
        expected = decoder_tap_names(unet)
        if list(taps.maps) != expected:
            raise KeyDiffError("internal", f"captured decoder taps {list(taps.maps)}; expected {expected}")
        captured = SV3DFeatures(
            maps=dict(taps.maps),
            frames=list(features.frames),
            azimuths_deg=[math.degrees(float(azimuths[f])) for f in features.frames],
            elevation_deg=90.0 - math.degrees(float(polars[features.frames[0]])),
            sigma=float(sigmas[target_step]),
            tau=float(features.tau),
            step=target_step,
            image_size=int(image.shape[-1]),
            source=models.source,
        )

    # Decode in chunks (sgm decoding_t); the VAE runs in fp32.
    vae = models.place(models.vae)
    flat = latents[0] / vae.config.scaling_factor  # [F, 4, h, w]
    decoded = []
    for start in range(0, num_frames, decode_chunk):
        chunk = vae.decode(flat[start : start + decode_chunk].to(vae.dtype)).sample  # [c, 3, H, W] in [-1, 1]
        decoded.append(((chunk.float() + 1.0) / 2.0).clamp(0.0, 1.0).cpu())
        report("decode", min(1.0, (start + decode_chunk) / num_frames), "decoding frames")
    frames = torch.cat(decoded)  # [F, 3, H, W]
    frames[-1] = image  # sgm: the last (input-view) frame is the conditioning image itself
    if models.offload:
        for module in (models.unet, models.vae, models.image_encoder):
            module.to("cpu")
    return OrbitSample(
        frames=frames,
        latents=latents[0].float().cpu(),
        camera_vectors=vectors,
        guidance=guidance,
        sigmas=sigmas,
        features=captured,
    )
