"""A V2V-style 3D encoder-decoder turning the unprojected K-channel volume into K keypoint heatmaps.

The measured CPU cost (../shared/reference/cpu_training_cost.md) is dominated by 3x3x3 convolutions at full
M^3 resolution, so this version keeps only `base` channels (and two convolutions) at full resolution and
does its real work at M/2 and M/4.
"""

from __future__ import annotations

import torch
from torch import nn

from backend.keypoints.layers import _groups
from backend.keypoints.volume import voxel_centres


def _conv_norm_relu(in_ch: int, out_ch: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
        nn.GroupNorm(_groups(out_ch), out_ch),
        nn.ReLU(inplace=True),
    )


class Residual3d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            _conv_norm_relu(in_ch, out_ch),
            nn.Conv3d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(out_ch), out_ch),
        )
        self.shortcut = nn.Identity() if in_ch == out_ch else nn.Sequential(nn.Conv3d(in_ch, out_ch, 1, bias=False), nn.GroupNorm(_groups(out_ch), out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.branch(x) + self.shortcut(x))


class _Up(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose3d(in_ch, out_ch, 2, stride=2, bias=False),
            nn.GroupNorm(_groups(out_ch), out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.up(x) + skip


def _coordinate_grid(volume: torch.Tensor) -> torch.Tensor:
    """[B, 3, M, M, M] voxel-centre coordinates in [-1, 1]: voxel_centres of the unit cube, as channels."""
    m = volume.shape[-1]
    grid = voxel_centres(m, 1.0, volume.device).to(volume.dtype).T.reshape(3, m, m, m)
    return grid.unsqueeze(0).expand(volume.shape[0], -1, -1, -1, -1)


class V2VNet(nn.Module):
    """[B, K, M, M, M] volume -> [B, K, M, M, M] heatmap logits (M divisible by 4).

    The input volume is added to the output, so before training the heatmaps already peak where the
    per-view maps agree; the 3D network learns a correction on top.

    With `coordinates`, the voxel's own position (x, y, z in [-1, 1]) enters the first convolution
    (CoordConv). Convolutions alone cannot tell a left foot from a right foot that look alike: a side view
    sees both in the same place, the softmax over views lights both up in every keypoint's volume, and a
    keypoint ends up following "the front foot" in one pose and "the back foot" in the next. Knowing where
    a voxel is in the canonical frame (the input view looks from -Y) lets the network pick one side.
    """

    def __init__(self, channels: int, base: int = 16, coordinates: bool = False) -> None:
        super().__init__()
        self.coordinates = coordinates
        self.front = _conv_norm_relu(channels + (3 if coordinates else 0), base)
        self.down1 = nn.Sequential(nn.MaxPool3d(2), Residual3d(base, 2 * base))
        self.down2 = nn.Sequential(nn.MaxPool3d(2), Residual3d(2 * base, 4 * base), Residual3d(4 * base, 4 * base))
        self.up2 = _Up(4 * base, 2 * base)
        self.mid = Residual3d(2 * base, 2 * base)
        self.up1 = _Up(2 * base, base)
        self.back = _conv_norm_relu(base, base)
        self.out = nn.Conv3d(base, channels, 1)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([volume, _coordinate_grid(volume)], dim=1) if self.coordinates else volume
        full = self.front(inputs)  # [B, base, M, M, M]
        half = self.down1(full)  # [B, 2base, M/2, ...]
        quarter = self.down2(half)  # [B, 4base, M/4, ...]
        half = self.mid(self.up2(quarter, half))
        full = self.back(self.up1(half, full))
        return self.out(full) + volume
