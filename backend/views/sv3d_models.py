"""The four SV3D-p components in stock diffusers/transformers classes: loading, checking, tiny test twins.

- UNet: `UNetSpatioTemporalConditionModel`, SV3D-p config (defaults except
  projection_class_embeddings_input_dim=1280, num_frames=21, sample_size=72); our forward is in sv3d_unet.py.
- VAE: plain `AutoencoderKL` (SD kl-f8, scaling 0.18215): SV3D's first stage is the image decoder, not SVD's
  temporal one (reference/sv3d.md §1.1).
- Image encoder: `CLIPVisionModelWithProjection` (OpenCLIP ViT-H-14, 1024-d projected embedding).
- Scheduler: `EulerDiscreteScheduler` with the SVD settings, which reproduce sgm's EDM Euler sampler with
  v-prediction, Karras sigmas 0.002..700 (reference/sv3d.md §2.3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from backend.errors import KeyDiffError
from backend.weights import DIFFUSERS_WEIGHT_FILES, TRANSFORMERS_WEIGHT_FILES, Component, locate_weights

# A diffusers-format SV3D-p conversion (UNet + SD VAE + SVD's CLIP encoder + SVD scheduler), licence
# sv3d-nc-community (non-commercial). The original checkpoint is stabilityai/sv3d (gated).
DEFAULT_SV3D_WEIGHTS = "chenguolin/sv3d-diffusers"
SV3D_WEIGHTS_ENV = "KEYDIFF3D_SV3D_WEIGHTS"
SV3D_COMPONENTS = (
    Component("unet", DIFFUSERS_WEIGHT_FILES),
    Component("vae", DIFFUSERS_WEIGHT_FILES),
    Component("image_encoder", TRANSFORMERS_WEIGHT_FILES),
    Component("scheduler", None, optional=True),  # built from SVD_SCHEDULER_CONFIG when absent
)
SV3D_HOW_TO_GET = (
    "Get the diffusers-format SV3D-p weights (about 9 GB, non-commercial licence): accept the licence at "
    "https://huggingface.co/stabilityai/sv3d, run `huggingface-cli download chenguolin/sv3d-diffusers "
    "--local-dir ~/models/sv3d-diffusers`, then pass --weights ~/models/sv3d-diffusers "
    f"(or set {SV3D_WEIGHTS_ENV}); the folder must hold unet/, vae/ and image_encoder/."
)
SV3D_P_UNET_CONFIG = {
    "sample_size": 72,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": (
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal",
    ),
    "up_block_types": (
        "UpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
    ),
    "block_out_channels": (320, 640, 1280, 1280),
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 1280,  # 256 (cond_aug) + 512 (polar) + 512 (azimuth)
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1,
    "num_attention_heads": (5, 10, 20, 20),
    "num_frames": 21,
}
SVD_SCHEDULER_CONFIG = {
    "prediction_type": "v_prediction",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
    "sigma_min": 0.002,
    "sigma_max": 700.0,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
}


@dataclass
class SV3DModels:
    """The loaded components; `offload` keeps idle models on the CPU and moves each to `device` in turn."""

    unet: UNetSpatioTemporalConditionModel
    vae: AutoencoderKL
    image_encoder: CLIPVisionModelWithProjection
    scheduler: EulerDiscreteScheduler
    device: torch.device
    dtype: torch.dtype  # UNet and CLIP dtype (fp16 on CUDA); the VAE stays fp32
    offload: bool = False
    source: str = "in-memory"

    @property
    def num_frames(self) -> int:
        return int(self.unet.config.num_frames)

    @property
    def vae_factor(self) -> int:
        """Pixels per latent pixel (8 for the SD VAE)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def clip_size(self) -> int:
        return int(self.image_encoder.config.image_size)

    @property
    def camera_embed_dim(self) -> int:
        return int(self.unet.config.addition_time_embed_dim)

    def place(self, module: torch.nn.Module) -> torch.nn.Module:
        """Move `module` to the compute device (with offload, move every other component back first)."""
        if self.offload:
            for other in (self.unet, self.vae, self.image_encoder):
                if other is not module:
                    other.to("cpu")
        return module.to(self.device)


def check_sv3d_p(unet: UNetSpatioTemporalConditionModel, source: str) -> None:
    """Reject a UNet that is not SV3D-p-shaped (e.g. SVD's, whose added embedding takes 3 ids of 256)."""
    d = int(unet.config.addition_time_embed_dim)
    width = unet.add_embedding.linear_1.in_features
    if width != 5 * d or unet.config.in_channels != 8:
        raise KeyDiffError(
            "missing_weights",
            f"the UNet in {source!r} takes a {width}-wide added embedding and {unet.config.in_channels} input "
            f"channels; SV3D-p needs {5 * d} (cond_aug {d} + polar {2 * d} + azimuth {2 * d}) and 8 "
            "(SV3D-u or SVD weights will not work)",
        )


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise KeyDiffError("invalid_argument", f"device {device!r} is not a torch device; expected cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise KeyDiffError("invalid_argument", f"device {device!r} asked for CUDA but torch sees no CUDA GPU; use --device cpu")
    return dev


def load_sv3d_models(
    weights: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    offload: bool = False,
    forward_chunking: bool = False,
    attention_slice: int | None = None,
) -> SV3DModels:
    """Load SV3D-p from a diffusers-layout folder or hub id (see `backend.weights.locate_weights`).

    On CUDA the UNet and CLIP run in fp16 by default (≈3.05 GB + 1.26 GB of weights), attention uses
    PyTorch SDPA (diffusers' default processor), `offload` keeps only the running model on the GPU, and
    `forward_chunking` splits the transformer feed-forwards (lower peak memory, a little slower) and
    `attention_slice` computes attention a few heads at a time (only useful where SDPA has no
    memory-efficient kernel, e.g. old GPUs; see `enable_attention_slicing`).
    """
    source = locate_weights(
        weights,
        SV3D_COMPONENTS,
        what="SV3D-p",
        how_to_get=SV3D_HOW_TO_GET,
        default=DEFAULT_SV3D_WEIGHTS,
        env_var=SV3D_WEIGHTS_ENV,
    )
    dev = resolve_device(device)
    dtype = dtype or (torch.float16 if dev.type == "cuda" else torch.float32)
    folder = source.folder
    try:
        unet = UNetSpatioTemporalConditionModel.from_pretrained(
            folder, subfolder="unet", torch_dtype=dtype, variant=source.variants.get("unet")
        )
        vae = AutoencoderKL.from_pretrained(
            folder, subfolder="vae", torch_dtype=torch.float32, variant=source.variants.get("vae")
        )
        image_encoder = CLIPVisionModelWithProjection.from_pretrained(
            folder, subfolder="image_encoder", torch_dtype=dtype, variant=source.variants.get("image_encoder")
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise KeyDiffError(
            "missing_weights",
            f"SV3D-p weights in {str(folder)!r} could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            f"{SV3D_HOW_TO_GET}",
        ) from exc
    if (folder / "scheduler" / "scheduler_config.json").is_file():
        scheduler = EulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler")
    else:
        scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    check_sv3d_p(unet, str(folder))
    if forward_chunking:
        unet.enable_forward_chunking()
    if attention_slice:
        enable_attention_slicing(unet, attention_slice)
    models = SV3DModels(unet, vae, image_encoder, scheduler, dev, dtype, offload, source.requested)
    for module in (unet, vae, image_encoder):
        module.eval().requires_grad_(False)
        if not offload:
            module.to(dev)
    return models


def enable_attention_slicing(unet: UNetSpatioTemporalConditionModel, slice_size: int) -> None:
    """Replace every attention processor by diffusers' SlicedAttnProcessor (same result, less peak memory
    without a memory-efficient SDPA kernel). The default processor is AttnProcessor2_0, i.e. PyTorch SDPA."""
    from diffusers.models.attention_processor import SlicedAttnProcessor

    if int(slice_size) < 1:
        raise KeyDiffError("invalid_argument", f"attention slice size {slice_size}; expected a positive number of heads")
    unet.set_attn_processor(SlicedAttnProcessor(int(slice_size)))


def save_sv3d_models(models: SV3DModels, folder: str | os.PathLike) -> Path:
    """Write the components in the diffusers layout `load_sv3d_models` reads (used for tiny test models)."""
    folder = Path(folder)
    models.unet.save_pretrained(folder / "unet")
    models.vae.save_pretrained(folder / "vae")
    models.image_encoder.save_pretrained(folder / "image_encoder")
    models.scheduler.save_pretrained(folder / "scheduler")
    return folder


def tiny_sv3d_models(seed: int = 0, num_frames: int = 4, unet_levels: int = 2) -> SV3DModels:
    """Random SV3D-shaped components small enough for CPU tests (the same classes and code paths).

    Channels are multiples of 32 (conv_norm_out is GroupNorm(32)); the VAE downsamples by 4, so a 32-px
    image gives 8×8 latents; the added embedding is 5·8 = 40 wide, the SV3D layout with d = 8.
    """
    torch.manual_seed(seed)
    if unet_levels == 2:
        levels = dict(
            block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            num_attention_heads=(2, 4),
        )
    elif unet_levels == 4:
        levels = dict(
            block_out_channels=(32, 32, 64, 64),
            down_block_types=SV3D_P_UNET_CONFIG["down_block_types"],
            up_block_types=SV3D_P_UNET_CONFIG["up_block_types"],
            num_attention_heads=(1, 1, 2, 2),
        )
    else:
        raise KeyDiffError("invalid_argument", f"unet_levels={unet_levels}; expected 2 or 4")
    unet = UNetSpatioTemporalConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        layers_per_block=2,
        cross_attention_dim=32,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=40,
        num_frames=num_frames,
        **levels,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=32,
    )
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            intermediate_size=37,
            patch_size=4,
        )
    )
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    for module in (unet, vae, image_encoder):
        module.eval().requires_grad_(False)
    return SV3DModels(unet, vae, image_encoder, scheduler, torch.device("cpu"), torch.float32, False, "tiny-random")
