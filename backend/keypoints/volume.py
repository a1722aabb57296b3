"""The geometric core of the keypoint network: voxel grid, projection, unprojection, soft-argmax.

Conventions (backend/cameras.py): cameras are `P = K [R | t]` with OpenCV world-to-camera R, t and pixel
intrinsics K; pixel coordinates are continuous, the image spans [0, W] x [0, H] (pixel centres at j + 0.5). The M^3 grid spans the cube of half-size s
around the origin; voxel centres sit at -s + (i + 1/2) * 2s / M. These functions are pure tensor code with no
learnable state, so the tests can pin them down exactly.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def full_precision(function):
    """Run `function` in float32 even inside a bfloat16/float16 autocast region.

    Mixed-precision training speeds up the convolutions, but a projection or a soft-argmax in bfloat16 (8-bit
    mantissa) would place keypoints only to ~0.4 % of the cube and pixels to ~0.4 px, so the geometry of this
    module always runs in full precision and its tensor inputs are cast up first.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        tensors = [a for a in (*args, *kwargs.values()) if torch.is_tensor(a)]
        device_type = tensors[0].device.type if tensors else "cpu"
        up = lambda a: a.float() if torch.is_tensor(a) and a.is_floating_point() else a  # noqa: E731
        with torch.autocast(device_type=device_type, enabled=False):
            return function(*(up(a) for a in args), **{k: up(v) for k, v in kwargs.items()})

    return wrapper


def voxel_centres(grid_size: int, half_size: float, device: torch.device | str | None = None) -> torch.Tensor:
    """World coordinates of the M^3 voxel centres, flattened in (x, y, z) 'ij' order: index = (i*M + j)*M + k."""
    step = 2.0 * half_size / grid_size
    axis = -half_size + (torch.arange(grid_size, device=device, dtype=torch.float32) + 0.5) * step  # [M]
    gx, gy, gz = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([gx, gy, gz], dim=-1).reshape(-1, 3)  # [M^3, 3]


@full_precision
def project_points(points: torch.Tensor, projections: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates and depth of world points in each view.

    points: [B, N, 3]; projections: [B, V, 3, 4]. Returns uv [B, V, N, 2] and depth [B, V, N] (camera z).
    """
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)  # [B, N, 4]
    projected = torch.einsum("bvij,bnj->bvni", projections, homogeneous)  # [B, V, N, 3]
    depth = projected[..., 2]
    uv = projected[..., :2] / depth.clamp(min=1e-6).unsqueeze(-1)
    return uv, depth


def pixels_to_grid(uv: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Continuous pixel coordinates (image spans [0, W]) to grid_sample's [-1, 1] with align_corners=False.

    image_size is (height, width) of the image the intrinsics K refer to; the result is valid for a
    feature map of any resolution covering that image.
    """
    height, width = image_size
    scale = uv.new_tensor([2.0 / width, 2.0 / height])
    return uv * scale - 1.0


@full_precision
def unproject_to_volume(
    view_maps: torch.Tensor,
    projections: torch.Tensor,
    image_size: tuple[int, int],
    centres: torch.Tensor,
) -> torch.Tensor:
    """Lift per-view maps into the voxel grid, aggregating views with a softmax over views.

    Each voxel centre is projected into every view and the view's map is sampled bilinearly; the voxel's
    value is sum_v softmax_v(f_v) * f_v per channel (BKinD-3D's 'softmax' aggregation, used by KeyDiff3D),
    so a voxel takes the value of the views that respond most strongly. Views in which the voxel is behind
    the camera or outside the image do not take part.

    view_maps: [B, V, C, h, w]; projections: [B, V, 3, 4]; centres: [N, 3], or [B, N, 3] for a grid per sample.
    Returns [B, C, N].
    """
    batch, views, channels, height, width = view_maps.shape
    centres = centres.expand(batch, -1, -1) if centres.dim() == 3 else centres.unsqueeze(0).expand(batch, -1, -1)
    uv, depth = project_points(centres, projections)  # [B, V, N, 2], [B, V, N]
    grid = pixels_to_grid(uv, image_size)  # [B, V, N, 2]
    inside = (depth > 1e-6) & (grid.abs() <= 1.0).all(dim=-1)  # [B, V, N]
    sampled = F.grid_sample(
        view_maps.reshape(batch * views, channels, height, width),
        grid.reshape(batch * views, 1, -1, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [B*V, C, 1, N]
    sampled = sampled.reshape(batch, views, channels, -1)  # [B, V, C, N]
    visible = inside.unsqueeze(2)  # [B, V, 1, N]
    # A large finite negative (not -inf) keeps softmax and its gradient finite where no view sees a voxel.
    weights = torch.softmax(sampled.masked_fill(~visible, -1e9), dim=1)  # [B, V, C, N]
    return (weights * sampled.masked_fill(~visible, 0.0)).sum(dim=1)  # [B, C, N]


@full_precision
def soft_argmax(heatmaps: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Integral regression: the expected voxel centre under softmax(heatmap) over all voxels.

    heatmaps: [B, K, N] logits (N = M^3, flattened like `voxel_centres`); centres: [N, 3] or [B, N, 3].
    Returns [B, K, 3].
    """
    probabilities = torch.softmax(heatmaps, dim=-1)  # [B, K, N]
    return probabilities @ centres


@full_precision
def heatmap_spread(heatmaps: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Spatial variance (summed over x, y, z) of each softmax heatmap around its soft-argmax.  [B, K]

    A keypoint whose heatmap is flat over the cube has a spread of 3 (2s)^2 / 12 and a soft-argmax stuck
    at the cube's centre whatever the input: a dead keypoint. heatmaps: [B, K, N] logits; centres: [N, 3].
    """
    probabilities = torch.softmax(heatmaps, dim=-1)  # [B, K, N]
    mean = probabilities @ centres  # [B, K, 3]
    second = probabilities @ (centres * centres)  # [B, K, 3]
    return (second - mean * mean).clamp(min=0.0).sum(-1)


def render_gaussian_heatmaps(uv: torch.Tensor, size: tuple[int, int], image_size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Isotropic 2D Gaussians at projected keypoints, drawn on an h x w map covering the camera image.

    uv: [N, K, 2] pixels of the camera image; sigma in the same [-1, 1] units as the edge maps.
    Returns [N, K, h, w] in [0, 1]. Used as the optional keypoint-heatmap input of the reconstruction net.
    """
    height, width = size
    points = pixels_to_grid(uv, image_size)  # [N, K, 2]
    ys = (torch.arange(height, device=uv.device, dtype=uv.dtype) + 0.5) * (2.0 / height) - 1.0
    xs = (torch.arange(width, device=uv.device, dtype=uv.dtype) + 0.5) * (2.0 / width) - 1.0
    dx = xs.view(1, 1, 1, width) - points[..., 0, None, None]  # [N, K, 1, w]
    dy = ys.view(1, 1, height, 1) - points[..., 1, None, None]  # [N, K, h, 1]
    return torch.exp(-(dx**2 + dy**2) / (2.0 * sigma**2))
