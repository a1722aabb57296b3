"""Training randomness: the input view's affine warp and the voxel grid's turns for the rotation loss.

Random affine augmentation of the input view (KeyDiff3D's ablation: without it MPJPE 134.5 vs 121.3): the
reconstruction net gets the input view's appearance through this warp, so it cannot copy pose from the
input image and must take it from the edge map. Randomness comes from an explicit generator so a resumed
run replays exactly the same warps and turns.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    max_rotation_deg: float = 15.0,
    scale_range: tuple[float, float] = (0.9, 1.1),
    max_translation: float = 0.1,
    fill: float = 1.0,
) -> torch.Tensor:
    """Warp each image [N, C, S, S] by its own random rotation, scale and shift; empty area gets `fill`."""
    count = images.shape[0]
    uniform = torch.rand(count, 4, generator=generator).to(images.device)
    angle = (2 * uniform[:, 0] - 1) * math.radians(max_rotation_deg)
    scale = scale_range[0] + uniform[:, 1] * (scale_range[1] - scale_range[0])
    shift = (2 * uniform[:, 2:] - 1) * max_translation  # [N, 2] in [-1, 1] units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], -1), torch.stack([sin, cos, shift[:, 1]], -1)], 1)  # [N, 2, 3]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # warp (image - fill) with zero padding, then add fill back: the outside becomes the background colour
    return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def random_rotations(count: int, generator: torch.Generator, axes: str) -> torch.Tensor:
    """[count, 3, 3] random rotations: "yaw" turns about the vertical (z, the orbit's axis) by a uniform angle;
    "3d" is uniform over all rotations (a normalised Gaussian quaternion)."""
    if axes == "yaw":
        angle = 2.0 * torch.pi * torch.rand(count, generator=generator)
        cos, sin, zero, one = angle.cos(), angle.sin(), torch.zeros(count), torch.ones(count)
        return torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=-1).reshape(count, 3, 3)
    quaternions = torch.randn(count, 4, generator=generator, dtype=torch.float64).numpy()  # scipy normalises them
    return torch.from_numpy(Rotation.from_quat(quaternions).as_matrix()).float()
