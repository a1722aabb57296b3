"""SV3D-p decoder features: capture during denoising, the on-disk format, and full-size shapes.

Taps: the output of every resnet of every UNet up block, `up_blocks.{b}.resnets.{j}` — 12 maps for SV3D-p,
10,560 channels in all, at 9/18/36/72 px for a 576-px input (Diffusion-Hyperfeatures' 12 decoder resnets;
we keep the block output, i.e. after the residual add and the temporal mix). Only the conditional half of
the CFG batch is kept, only for the chosen frames, in fp16 at native resolution (≈18 MB per view);
consumers upsample lazily (`SV3DFeatures.stacked`).

File format (`features.safetensors`, version 1)
    tensors: one per tap, key = tap name (e.g. "up_blocks.2.resnets.1"), value [V, C, H, W] float16,
             V = the captured views in the order of `frames`.
    metadata (safetensors string header), key "keydiff3d" = JSON object with
        format "keydiff3d.sv3d_features", version 1, taps (ordered names), frames (orbit frame index per view),
        azimuths_deg and elevation_deg (the SV3D orbit angles of those frames), sigma (EDM noise level of the
        captured step), tau (the equivalent DDPM timestep of 1000), step (index in the sampler),
        image_size (pixels of the generated views), source (weights id).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from backend.errors import KeyDiffError

FEATURES_FORMAT = "keydiff3d.sv3d_features"
FEATURES_VERSION = 1
FEATURES_FILENAME = "features.safetensors"


def decoder_tap_names(unet: torch.nn.Module) -> list[str]:
    """All decoder resnets in execution order: up_blocks.0.resnets.0 … up_blocks.{L-1}.resnets.{n-1}."""
    return [f"up_blocks.{b}.resnets.{j}" for b, block in enumerate(unet.up_blocks) for j in range(len(block.resnets))]


@dataclass
class SV3DFeatures:
    """Decoder feature maps of some orbit views, as stored in features.safetensors."""

    maps: dict[str, torch.Tensor]  # tap name -> [V, C, H, W] float16, in tap order
    frames: list[int]  # [V] orbit frame index of each view
    azimuths_deg: list[float]  # [V]
    elevation_deg: float
    sigma: float
    tau: float
    step: int
    image_size: int
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def taps(self) -> list[str]:
        return list(self.maps)

    @property
    def channels(self) -> list[int]:
        return [int(m.shape[1]) for m in self.maps.values()]

    @property
    def resolutions(self) -> list[int]:
        return [int(m.shape[-1]) for m in self.maps.values()]

    def view(self, frame: int) -> dict[str, torch.Tensor]:
        """The maps of one orbit frame: tap name -> [C, H, W]."""
        if frame not in self.frames:
            raise KeyDiffError("invalid_argument", f"frame {frame} was not captured; captured frames are {self.frames}")
        i = self.frames.index(frame)
        return {name: m[i] for name, m in self.maps.items()}

    def stacked(self, size: int, frames: Sequence[int] | None = None, dtype=torch.float32) -> torch.Tensor:
        """All taps bilinearly resized to size×size and concatenated: [V, ΣC, size, size]."""
        index = [self.frames.index(f) for f in frames] if frames is not None else list(range(len(self.frames)))
        parts = [
            F.interpolate(m[index].to(dtype), size=(size, size), mode="bilinear", align_corners=False)
            for m in self.maps.values()
        ]
        return torch.cat(parts, dim=1)

    def metadata(self) -> dict:
        return {
            "format": FEATURES_FORMAT,
            "version": FEATURES_VERSION,
            "taps": self.taps,
            "frames": [int(f) for f in self.frames],
            "azimuths_deg": [float(a) for a in self.azimuths_deg],
            "elevation_deg": float(self.elevation_deg),
            "sigma": float(self.sigma),
            "tau": float(self.tau),
            "step": int(self.step),
            "image_size": int(self.image_size),
            "source": self.source,
            **({"extra": self.extra} if self.extra else {}),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file in the same folder, then rename)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {name: m.to(torch.float16).contiguous().cpu() for name, m in self.maps.items()}
        fd, tmp = tempfile.mkstemp(prefix=".features-", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"keydiff3d": json.dumps(self.metadata())})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path


def load_features(path: str | os.PathLike) -> SV3DFeatures:
    """Read a features.safetensors written by `SV3DFeatures.save`, checking its format header."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise KeyDiffError("unreadable_file", f"SV3D features file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads((handle.metadata() or {}).get("keydiff3d", "{}"))
            if header.get("format") != FEATURES_FORMAT:
                raise KeyDiffError(
                    "unreadable_file", f"{str(path)!r} is not a KeyDiff3D SV3D features file (no {FEATURES_FORMAT} header)"
                )
            if int(header.get("version", -1)) > FEATURES_VERSION:
                raise KeyDiffError(
                    "unreadable_file",
                    f"{str(path)!r} has features format version {header['version']}; this build reads up to {FEATURES_VERSION}",
                )
            maps = {name: handle.get_tensor(name) for name in header["taps"]}
    except KeyDiffError:
        raise
    except Exception as exc:
        raise KeyDiffError("unreadable_file", f"{str(path)!r} is not a readable safetensors file ({exc})") from exc
    return SV3DFeatures(
        maps=maps,
        frames=[int(f) for f in header["frames"]],
        azimuths_deg=[float(a) for a in header["azimuths_deg"]],
        elevation_deg=float(header["elevation_deg"]),
        sigma=float(header["sigma"]),
        tau=float(header["tau"]),
        step=int(header["step"]),
        image_size=int(header["image_size"]),
        source=str(header.get("source", "")),
        extra=dict(header.get("extra", {})),
    )


class DecoderTaps:
    """Forward hooks on the decoder resnets that keep the maps of one UNet call, when armed.

    `batch_index` picks the video in the UNet batch (with CFG, [uncond, cond] → 1); `frames` picks views.
    """

    def __init__(self, unet: torch.nn.Module, frames: Sequence[int], batch_index: int, num_frames: int) -> None:
        self.unet = unet
        self.frames = list(frames)
        self.batch_index = batch_index
        self.num_frames = num_frames
        self.armed = False
        self.maps: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def _hook(self, name: str):
        def keep(_module, _inputs, output):
            if not self.armed:
                return
            out = output[0] if isinstance(output, tuple) else output  # [B·F, C, H, W]
            video = out.reshape(-1, self.num_frames, *out.shape[1:])[self.batch_index]  # [F, C, H, W]
            self.maps[name] = video[self.frames].detach().to("cpu", torch.float16)

        return keep

    def __enter__(self) -> "DecoderTaps":
        for name in decoder_tap_names(self.unet):
            self._handles.append(self.unet.get_submodule(name).register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.armed = False


@contextmanager
def _empty_weights() -> Iterator[None]:
    from accelerate import init_empty_weights

    with init_empty_weights():
        yield


def meta_decoder_shapes(
    unet_config: dict, num_frames: int = 21, latent_size: int = 72
) -> tuple[int, dict[str, tuple[int, ...]]]:
    """Instantiate a UNet config on the meta device (no memory) and run our forward on meta tensors.

    Returns (parameter count, tap name -> [F, C, H, W]): the full-size SV3D-p shapes, checked without weights.
    """
    from diffusers import UNetSpatioTemporalConditionModel

    from backend.views.sv3d_unet import sv3d_unet_forward

    with _empty_weights():
        unet = UNetSpatioTemporalConditionModel(**unet_config)
    unet = unet.to_empty(device="meta")
    params = sum(p.numel() for p in unet.parameters())
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [
        unet.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape))
        )
        for name in decoder_tap_names(unet)
    ]
    meta = torch.device("meta")
    width = unet.add_embedding.linear_1.in_features
    with torch.no_grad():
        sv3d_unet_forward(
            unet,
            torch.empty(1, num_frames, unet.config.in_channels, latent_size, latent_size, device=meta),
            torch.empty((), device=meta),
            torch.empty(1, 1, unet.config.cross_attention_dim, device=meta),
            torch.empty(1, num_frames, width, device=meta),
        )
    for handle in handles:
        handle.remove()
    return params, shapes
