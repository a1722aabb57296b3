"""One interface for the frozen feature backbones: views in, a list of per-layer maps out.

- `cnn`: ImageNet MobileNetV2 applied per view (the paper's "standard CNN features" ablation; runs on CPU).
- `sv3d`: the SV3D-p UNet decoder features produced by the views/SV3D stage, read from its tensors or its
  safetensors file; this adapter only selects and orders the configured layers, since the diffusion pass
  itself belongs to backend/views.
Both return layers shaped [B, V, C_l, h_l, w_l], which is what `KeypointNet.forward` takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from backend.errors import KeyDiffError
from backend.keypoints.mobilenet import MobileNetTaps
from backend.keypoints.network import KeypointNetConfig


class FeatureBackbone(Protocol):
    layer_channels: tuple[int, ...]

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:  # [B, V, 3, H, W] -> [B, V, C_l, h_l, w_l]
        ...


class CnnBackbone(nn.Module):
    """Frozen MobileNetV2 stages; views are resized to `image_size` first (features are cached in training)."""

    def __init__(self, taps: tuple[int, ...] = (3, 6, 13), image_size: int = 128, weights_path: str | Path | None = None) -> None:
        super().__init__()
        self.net = MobileNetTaps(taps, weights_path)
        self.image_size = image_size
        self.layer_channels = self.net.channels

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.dim() != 5 or images.shape[2] != 3:
            raise KeyDiffError("invalid_image", f"views have shape {tuple(images.shape)}, expected [B, V, 3, H, W] RGB in [0, 1]")
        batch, views = images.shape[:2]
        flat = images.flatten(0, 1).float()
        if flat.shape[-2:] != (self.image_size, self.image_size):
            flat = F.interpolate(flat, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True)
        return [layer.unflatten(0, (batch, views)) for layer in self.net(flat)]


class Sv3dFeatureAdapter:
    """Selects the configured SV3D decoder layers (by hook name, e.g. 'up_blocks.2.resnets.1') in order."""

    def __init__(self, layer_names: list[str], layer_channels: list[int]) -> None:
        self.layer_names = list(layer_names)
        self.layer_channels = tuple(layer_channels)

    def select(self, features: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """features: name -> [V, C, h, w] or [B, V, C, h, w]. Returns the configured layers as [B, V, C, h, w] float32."""
        missing = [name for name in self.layer_names if name not in features]
        if missing:
            raise KeyDiffError("invalid_argument", f"SV3D features lack layers {missing}; have {sorted(features)[:12]}")
        layers = []
        for name, channels in zip(self.layer_names, self.layer_channels):
            tensor = features[name].float()
            tensor = tensor.unsqueeze(0) if tensor.dim() == 4 else tensor
            if tensor.dim() != 5 or tensor.shape[2] != channels:
                raise KeyDiffError("invalid_argument", f"SV3D layer {name} has shape {tuple(tensor.shape)}, expected [B, V, {channels}, h, w]")
            layers.append(tensor)
        return layers

    def load(self, path: str | Path) -> list[torch.Tensor]:
        """Read a safetensors file of decoder features written by the SV3D stage."""
        try:
            from safetensors.torch import load_file
        except ImportError as error:
            raise KeyDiffError("missing_dependency", "reading SV3D features needs `pip install safetensors`") from error
        path = Path(path)
        if not path.is_file():
            raise KeyDiffError("unreadable_file", f"SV3D feature file {path} does not exist")
        return self.select(load_file(str(path)))


def build_cnn_backbone(config: KeypointNetConfig, weights_path: str | Path | None = None) -> CnnBackbone:
    if config.backbone != "cnn":
        raise KeyDiffError("invalid_argument", f"config.backbone is {config.backbone!r}, expected 'cnn' for the MobileNetV2 backbone")
    backbone = CnnBackbone(tuple(int(name) for name in config.backbone_layers), config.backbone_image_size, weights_path)
    if list(backbone.layer_channels) != list(config.layer_channels):
        raise KeyDiffError("invalid_argument", f"config.layer_channels={config.layer_channels} do not match MobileNetV2 stages "
                           f"{config.backbone_layers} (channels {list(backbone.layer_channels)})")
    return backbone
