"""Trainable 2D parts: the hyperfeature aggregator and the per-view keypoint head.

The aggregator follows Diffusion Hyperfeatures: every tapped layer gets its own bottleneck to C channels,
all are resized to one resolution and mixed with learned softmax weights. That lets the same network read
three MobileNetV2 stages or twelve SV3D decoder blocks; only `layer_channels` changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int) -> int:
    """GroupNorm groups: 8 channels per group where possible (batch-size independent, DDP-safe)."""
    for groups in (8, 4, 2, 1):
        if channels % groups == 0 and channels // groups >= 4:
            return groups
    return 1


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1 down, 3x3, 1x1 up) with a projected shortcut, mapping C_in to C_out."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = max(out_channels // 4, 4)
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.GroupNorm(_groups(mid), mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(mid), mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1, bias=False),
            nn.GroupNorm(_groups(out_channels), out_channels),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.GroupNorm(_groups(out_channels), out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.branch(x) + self.shortcut(x))


class HyperfeatureAggregator(nn.Module):
    """Per-layer bottlenecks to C channels at a common resolution, mixed by softmax(w_l)."""

    def __init__(self, layer_channels: tuple[int, ...], channels: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.bottlenecks = nn.ModuleList(Bottleneck(c, channels) for c in layer_channels)
        self.mixing_logits = nn.Parameter(torch.zeros(len(layer_channels)))

    def mixing_weights(self) -> torch.Tensor:
        return torch.softmax(self.mixing_logits, dim=0)  # [L]

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:  # layers[l]: [N, C_l, h_l, w_l]
        if len(layers) != len(self.bottlenecks):
            raise ValueError(f"expected {len(self.bottlenecks)} feature layers, got {len(layers)}")
        size = (self.resolution, self.resolution)
        weights = self.mixing_weights()
        mixed = 0.0
        for weight, bottleneck, features in zip(weights, self.bottlenecks, layers):
            if features.shape[-2:] != size:
                features = F.interpolate(features, size=size, mode="bilinear", align_corners=False)
            mixed = mixed + weight * bottleneck(features)
        return mixed  # [N, C, r, r]


class KeypointHead(nn.Module):
    """The shallow phi_kp: two 3x3 convs from aggregated features to K maps per view."""

    def __init__(self, channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(_groups(channels), channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, num_keypoints, 3, padding=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [N, C, r, r] -> [N, K, r, r]
        return self.layers(features)
