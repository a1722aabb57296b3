"""The KeyDiff3D keypoint network: multi-view features -> K 3D keypoints + a learned K x K edge graph.

Inference graph only (training/ imports it; this module never imports training/). Every hyper-parameter
is a field of `KeypointNetConfig`, saved with the checkpoint, so a checkpoint rebuilds its own network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from backend.errors import KeyDiffError
from backend.keypoints.layers import HyperfeatureAggregator, KeypointHead
from backend.keypoints.v2v import V2VNet
from backend.keypoints.volume import soft_argmax, unproject_to_volume, voxel_centres


@dataclass
class KeypointNetConfig:
    """Defaults are the measured CPU config (reference/cpu_training_cost.md); `paper_config()` gives M=72."""

    num_keypoints: int = 18
    num_views: int = 4  # input view + 3 spread views
    grid_size: int = 24  # M; the paper uses 72
    cube_half_size: float = 0.6  # s: the volume spans [-s, s]^3 (DESIGN.md)
    backbone: str = "cnn"  # "cnn" (MobileNetV2) or "sv3d" (decoder features)
    backbone_layers: list[str] = field(default_factory=lambda: ["3", "6", "13"])  # MobileNetV2 stages or SV3D hook names
    layer_channels: list[int] = field(default_factory=lambda: [24, 32, 96])  # channels of each backbone layer
    backbone_image_size: int = 128  # views are resized to this before the cnn backbone
    feature_channels: int = 64  # C of the aggregated hyperfeatures
    feature_resolution: int = 32  # common resolution of the aggregated maps
    v2v_base_channels: int = 16
    volume_coordinates: bool = False  # CoordConv: voxel positions enter the 3D network (tells left from right)
    adjacency_init: float = -4.0  # softplus(-4) ~ 0.018: edges start almost off (AutoLink)

    def __post_init__(self) -> None:
        checks = {
            "num_keypoints": self.num_keypoints >= 2,
            "num_views": self.num_views >= 1,
            "grid_size": self.grid_size >= 4 and self.grid_size % 4 == 0,
            "cube_half_size": self.cube_half_size > 0,
            "backbone": self.backbone in ("cnn", "sv3d"),
            "layer_channels": len(self.layer_channels) == len(self.backbone_layers) > 0,
            "feature_channels": self.feature_channels >= 4,
            "feature_resolution": self.feature_resolution >= 4,
        }
        for name, ok in checks.items():
            if not ok:
                raise KeyDiffError("invalid_argument", f"KeypointNetConfig.{name}={getattr(self, name)!r} is not usable "
                                   "(grid_size must be a multiple of 4, backbone 'cnn' or 'sv3d', one channel count per layer)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "KeypointNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyDiffError("invalid_argument", f"unknown keypoint network settings {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)


def paper_config(**overrides) -> KeypointNetConfig:
    """The paper's setting: K=18, 4 views, M=72."""
    return KeypointNetConfig(**{"grid_size": 72, **overrides})


@dataclass
class KeypointOutput:
    keypoints: torch.Tensor  # [B, K, 3] world coordinates in the canonical frame
    heatmaps: torch.Tensor  # [B, K, M, M, M] logits of the 3D heatmaps
    view_maps: torch.Tensor  # [B, V, K, r, r] per-view keypoint maps before unprojection
    adjacency: torch.Tensor  # [K, K] symmetric non-negative edge weights, zero diagonal


class KeypointNet(nn.Module):
    def __init__(self, config: KeypointNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or KeypointNetConfig()
        c = self.config
        self.aggregator = HyperfeatureAggregator(tuple(c.layer_channels), c.feature_channels, c.feature_resolution)
        self.head = KeypointHead(c.feature_channels, c.num_keypoints)
        self.volume_net = V2VNet(c.num_keypoints, c.v2v_base_channels, c.volume_coordinates)
        # Raw edge logits A; only the upper triangle is used, so the graph is symmetric by construction.
        self.edge_logits = nn.Parameter(c.adjacency_init + 0.1 * torch.randn(c.num_keypoints, c.num_keypoints))
        self.register_buffer("centres", voxel_centres(c.grid_size, c.cube_half_size), persistent=False)  # [M^3, 3]

    def adjacency(self) -> torch.Tensor:
        """w_ij = softplus(A_ij) from the upper triangle, mirrored; zero on the diagonal.  [K, K]"""
        upper = torch.triu(F.softplus(self.edge_logits), diagonal=1)
        return upper + upper.T

    def adjacency_parameters(self) -> list[nn.Parameter]:
        """Trained with their own learning-rate multiplier (AutoLink / BKinD use x512)."""
        return [self.edge_logits]

    def forward(self, layers: list[torch.Tensor], projections: torch.Tensor, image_size: tuple[int, int]) -> KeypointOutput:
        """layers[l]: [B, V, C_l, h_l, w_l] backbone features; projections: [B, V, 3, 4] for images of image_size (h, w)."""
        c = self.config
        batch, views = projections.shape[:2]
        for index, features in enumerate(layers):
            if features.dim() != 5 or features.shape[:3] != (batch, views, c.layer_channels[index]):
                raise KeyDiffError("invalid_argument", f"feature layer {index} has shape {tuple(features.shape)}, expected "
                                   f"[{batch}, {views}, {c.layer_channels[index]}, h, w] to match the cameras and the config")
        flat = [features.flatten(0, 1) for features in layers]  # [B*V, C_l, h_l, w_l]
        view_maps = self.head(self.aggregator(flat))  # [B*V, K, r, r]
        view_maps = view_maps.unflatten(0, (batch, views))  # [B, V, K, r, r]
        keypoints, heatmaps = self.locate(view_maps, projections, image_size)
        return KeypointOutput(keypoints=keypoints, heatmaps=heatmaps, view_maps=view_maps, adjacency=self.adjacency())

    def locate(self, view_maps: torch.Tensor, projections: torch.Tensor, image_size: tuple[int, int],
               rotation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-view keypoint maps -> world keypoints [B, K, 3] and 3D heatmap logits [B, K, M, M, M].

        rotation [B, 3, 3] turns the voxel grid about the cube's centre (voxel i sits at R @ centre_i), so the 3D
        network sees the object turned by R^-1; the keypoints still come out in world coordinates. Training uses
        it for the rotation-consistency loss (the paper's L_vic): the same object must give the same keypoints
        however the grid is turned, so no keypoint can be defined by the grid's axes (e.g. "the foot with the
        larger y") instead of by the body.
        """
        centres = self.centres if rotation is None else self.centres @ rotation.transpose(1, 2)  # [N, 3] or [B, N, 3]
        volume = unproject_to_volume(view_maps, projections, image_size, centres)  # [B, K, M^3]
        m = self.config.grid_size
        heatmaps = self.volume_net(volume.unflatten(-1, (m, m, m)))  # [B, K, M, M, M]
        return soft_argmax(heatmaps.flatten(2), centres), heatmaps
