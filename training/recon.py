"""The reconstruction network: redraw a target view from its edge map + the appearance of the input view.

AutoLink-style UNet. Its input is the randomly affine-augmented input view (appearance, 3 ch), the target
view's edge map (1 ch) and, optionally, the K projected keypoint heatmaps. The only place where the target
view's pose enters is the edge map, so a good reconstruction forces keypoints and edges onto the object's
structure. GroupNorm instead of BatchNorm: batches are tiny on CPU and DDP ranks need no sync.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(in_ch: int, out_ch: int) -> nn.Sequential:
    groups = 8 if out_ch % 8 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1),
        nn.GroupNorm(groups, out_ch),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1),
        nn.GroupNorm(groups, out_ch),
        nn.LeakyReLU(0.2, inplace=True),
    )


class ReconstructionUNet(nn.Module):
    def __init__(self, in_channels: int, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoders.append(_block(previous, width))
            previous = width
        self.decoders = nn.ModuleList()
        for skip_width in reversed(widths[:-1]):
            self.decoders.append(_block(previous + skip_width, skip_width))
            previous = skip_width
        self.to_rgb = nn.Conv2d(previous, 3, 1)

    def forward(self, appearance: torch.Tensor, edge_map: torch.Tensor, heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        """appearance [N, 3, S, S], edge_map [N, 1, S, S], heatmaps [N, K, S, S] or None -> RGB [N, 3, S, S] in (0, 1)."""
        parts = [appearance, edge_map] + ([heatmaps] if heatmaps is not None else [])
        x = torch.cat(parts, dim=1)
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return torch.sigmoid(self.to_rgb(x))
