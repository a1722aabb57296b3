"""Stage 0: initial Gaussians from the visual hull of the masks (the views are masked, so no SfM is needed).

Voxel centres inside every silhouette form the hull; its surface voxels (a neighbour outside) are where
Gaussians can be seen, so only those seed Gaussians, coloured by the mean colour of the views they project to.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from backend.errors import KeyDiffError

from .gaussians import GaussianSet
from .knn import mean_neighbour_distance
from .sh import num_sh_bases, rgb_to_sh0
from .views import TrainViews


def carve(views: TrainViews, grid: int, half_size: float, mask_threshold: float = 0.5,
          min_votes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy [G, G, G] bool (x, y, z order) of the cube [-half_size, half_size]³ and voxel centres [G,G,G,3].

    A voxel is kept when it projects inside the mask in every view except at most `len(views) // 10` of them
    (or all but `min_votes`), tolerating a slightly wrong mask or camera. Projecting outside an image counts
    as empty: the object is framed in every view.
    """
    axis = (np.arange(grid) + 0.5) / grid * 2 * half_size - half_size
    centres = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)          # [G, G, G, 3]
    pts = torch.from_numpy(centres.reshape(-1, 3)).float().to(views.images.device)
    votes_against = views_against(views, pts, views.masks, mask_threshold)            # [P]
    slack = len(views) // 10 if min_votes is None else len(views) - min_votes
    occupied = (votes_against <= slack).cpu().numpy().reshape(grid, grid, grid)
    return occupied, centres


def pixel_lookup(views: TrainViews, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat pixel index [C, P] of each point [P, 3] in each view (clamped to the image), and whether the point
    falls inside that image in front of the camera [C, P]."""
    R, t = views.viewmats[:, :3, :3], views.viewmats[:, :3, 3]
    cam = torch.einsum("cij,nj->cni", R, points) + t[:, None]                          # [C, P, 3]
    z = cam[..., 2].clamp_min(1e-6)
    col = torch.floor(views.Ks[:, None, 0, 0] * cam[..., 0] / z + views.Ks[:, None, 0, 2]).long()
    row = torch.floor(views.Ks[:, None, 1, 1] * cam[..., 1] / z + views.Ks[:, None, 1, 2]).long()
    inside = (col >= 0) & (col < views.width) & (row >= 0) & (row < views.height) & (cam[..., 2] > 0)
    flat = row.clamp(0, views.height - 1) * views.width + col.clamp(0, views.width - 1)
    return flat, inside


def views_against(views: TrainViews, points: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """[P] number of views in which each point projects outside `masks` [C, H, W] or outside the image (the
    object is framed in every view, so off-image counts as empty)."""
    flat, inside = pixel_lookup(views, points)
    in_mask = torch.gather(masks.reshape(len(views), -1), 1, flat) >= threshold
    return (~(inside & in_mask)).sum(0)


def hull_gaussians(views: TrainViews, count: int, sh_degree: int, grid: int = 64,
                   half_size: float | None = None, seed: int = 0) -> GaussianSet:
    """`count` Gaussians on the surface voxels of the visual hull, with colours sampled from the views."""
    if half_size is None:   # the half-width the cameras see at the origin (about ±0.6 m for the SV3D orbit)
        half_size = float((views.camera_centres.norm(dim=1) * (views.width / 2) / views.Ks[:, 0, 0]).max())
    occupied, centres = carve(views, grid, half_size)
    surface = occupied & ~ndimage.binary_erosion(occupied)
    if surface.sum() < 4:
        raise KeyDiffError("invalid_image", f"the masks' visual hull is empty ({int(occupied.sum())} voxels of "
                           f"{grid}³): are the masks and cameras of the same object?")
    rng = np.random.default_rng(seed)
    candidates = centres[surface]                                                       # [S, 3]
    pick = rng.choice(len(candidates), size=count, replace=len(candidates) < count)
    voxel = 2 * half_size / grid
    pts = candidates[pick] + rng.uniform(-0.5, 0.5, size=(count, 3)) * voxel
    device = views.images.device
    means = torch.from_numpy(pts).float().to(device)
    rgb = _sample_colours(views, means)
    dist = mean_neighbour_distance(means).clamp(max=voxel * 2)
    sh_rest = num_sh_bases(sh_degree) - 1
    return GaussianSet(means=means, quats=torch.tensor([[1.0, 0, 0, 0]], device=device).repeat(count, 1),
                       log_scales=torch.log(dist)[:, None].repeat(1, 3),
                       opacity_logits=torch.full((count,), math.log(0.1 / 0.9), device=device),
                       sh0=rgb_to_sh0(rgb)[:, None], shN=torch.zeros(count, sh_rest, 3, device=device))


def _sample_colours(views: TrainViews, means: torch.Tensor) -> torch.Tensor:
    """Mean colour [N, 3] of the masked pixels each point projects to (grey where none)."""
    flat, _ = pixel_lookup(views, means)                                                # [C, N]
    rgb = torch.gather(views.images.reshape(len(views), -1, 3), 1, flat[..., None].expand(-1, -1, 3))
    weight = torch.gather(views.masks.reshape(len(views), -1), 1, flat)[..., None]     # [C, N, 1]
    mean = (rgb * weight).sum(0) / weight.sum(0).clamp_min(1e-6)
    return torch.where(weight.sum(0) > 0, mean, torch.full_like(mean, 0.5))
