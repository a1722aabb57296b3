"""Which way does SV3D turn? A visual-hull self-check of the azimuth sense from the generated masks.

SV3D's conditioning azimuth increases frame by frame, but no source says whether that moves the camera
clockwise or counter-clockwise in the world; `backend.cameras.AZIMUTH_SENSE` holds our guess. Under the
right sense the silhouettes of all views agree on one object; under the wrong one each view sees the object
mirrored in time order and the views contradict each other.

Test, for each sense s ∈ {+1, −1}: place the orbit cameras with s, and for every view k carve the visual hull
of all *other* views (a voxel is kept when it projects inside every other mask), render that hull's
silhouette into view k and score it against mask k (IoU). Leaving view k out matters: a hull always
projects inside the masks it was carved from. The sense with the higher mean IoU wins; a margin below
`INCONCLUSIVE_MARGIN` (objects that look alike from every azimuth, e.g. a vase) decides nothing;
left-right symmetric objects such as a character facing the camera still decide (tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from backend.cameras import (
    AZIMUTH_SENSE,
    DEFAULT_FOV_DEG,
    DEFAULT_RADIUS,
    Camera,
    look_at_camera,
    orbit_azimuths_deg,
    orbit_center,
    stack_cameras,
)
from backend.errors import KeyDiffError

INCONCLUSIVE_MARGIN = 0.02  # mean-IoU difference below which the check decides nothing
DEFAULT_GRID = 64  # voxels per side of the carving grid
DEFAULT_CHECK_SIZE = 64  # masks are compared at this resolution (pixels)


def orbit_cameras_for_sense(
    sense: int,
    frames: Sequence[int],
    *,
    image_size: int,
    elevation_deg: float,
    radius: float = DEFAULT_RADIUS,
    fov_deg: float = DEFAULT_FOV_DEG,
) -> list[Camera]:
    """The orbit cameras of `frames` as if azimuth turned with `sense` (+1/−1) instead of AZIMUTH_SENSE.

    Uses backend.cameras for everything; only the sign of the azimuth handed to `orbit_center` changes.
    """
    if sense not in (1, -1):
        raise KeyDiffError("invalid_argument", f"sense={sense}; expected +1 or -1")
    azimuths = orbit_azimuths_deg()[list(frames)] * (sense * AZIMUTH_SENSE)
    centers = orbit_center(azimuths, elevation_deg, radius)  # [N, 3]
    return [look_at_camera(c, fov_deg=fov_deg, width=image_size) for c in centers]


@dataclass(frozen=True)
class OrbitCheck:
    """The result of the self-check; `mean_iou[s]` for each sense s."""

    mean_iou: dict[int, float]
    per_view_iou: dict[int, list[float]] = field(repr=False)
    configured_sense: int = AZIMUTH_SENSE

    @property
    def margin(self) -> float:
        return abs(self.mean_iou[1] - self.mean_iou[-1])

    @property
    def best_sense(self) -> int | None:
        """The winning sense, or None when the margin is too small to tell."""
        if self.margin < INCONCLUSIVE_MARGIN:
            return None
        return 1 if self.mean_iou[1] > self.mean_iou[-1] else -1

    @property
    def configured_loses(self) -> bool:
        return self.best_sense is not None and self.best_sense != self.configured_sense

    def message(self) -> str:
        scores = f"silhouette IoU {self.mean_iou[1]:.3f} with sense +1, {self.mean_iou[-1]:.3f} with sense -1"
        if self.best_sense is None:
            return f"orbit check inconclusive ({scores}); the object may look alike from every side"
        if self.configured_loses:
            return (
                f"WARNING: the generated views fit azimuth sense {self.best_sense:+d} better than the configured "
                f"AZIMUTH_SENSE={self.configured_sense:+d} ({scores}); 3D results may be mirrored"
            )
        return f"orbit check agrees with AZIMUTH_SENSE={self.configured_sense:+d} ({scores})"

    def to_dict(self) -> dict:
        return {
            "mean_iou": {str(k): v for k, v in self.mean_iou.items()},
            "per_view_iou": {str(k): v for k, v in self.per_view_iou.items()},
            "configured_sense": self.configured_sense,
            "best_sense": self.best_sense,
            "margin": self.margin,
            "message": self.message(),
        }


def _resize_masks(masks: np.ndarray, size: int) -> torch.Tensor:  # [N, size, size] bool
    area = F.interpolate(torch.from_numpy(masks.astype(np.float32))[:, None], size=(size, size), mode="area")
    return area[:, 0] > 0.5


def _inside_masks(points: torch.Tensor, cameras: list[Camera], masks: torch.Tensor) -> torch.Tensor:
    """[N, P] bool: does point p project inside mask n (and in front of camera n)?"""
    batch = stack_cameras(cameras)
    P = torch.from_numpy(batch.projection).to(torch.float32)  # [N, 3, 4]
    homog = torch.cat([points, torch.ones_like(points[:, :1])], dim=1)  # [P, 4]
    proj = torch.einsum("nij,pj->npi", P, homog)  # [N, P, 3]
    depth = proj[..., 2]
    pix = proj[..., :2] / depth.clamp_min(1e-6)[..., None]  # continuous pixels, [N, P, 2]
    size = masks.shape[-1]
    cols, rows = pix[..., 0].floor().long(), pix[..., 1].floor().long()
    valid = (depth > 0) & (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    view = torch.arange(len(cameras))[:, None].expand_as(cols)
    hit = masks[view, rows.clamp(0, size - 1), cols.clamp(0, size - 1)]
    return hit & valid


def _hull_silhouettes(hulls: torch.Tensor, cameras: list[Camera], half: float, samples: int) -> torch.Tensor:
    """[N, S, S] bool silhouette of hull n ([N, G, G, G] occupancy, axes z, y, x) seen by camera n.

    Ray marching: `samples` points per pixel ray across the carving cube, trilinear occupancy > 0.5 anywhere
    along the ray; one batched grid_sample for all views.
    """
    from backend.cameras import pixel_rays

    reach = half * math.sqrt(3.0)
    grids = []
    for camera in cameras:  # N small per-view setups; the heavy part is the one grid_sample below
        origin, dirs = pixel_rays(camera)  # [3], [S, S, 3]
        dist = float(np.linalg.norm(origin))
        depths = torch.linspace(max(dist - reach, 1e-3), dist + reach, samples)  # [T]
        pts = torch.from_numpy(origin).float() + torch.from_numpy(dirs).float()[..., None, :] * depths[:, None]
        grids.append((pts / half).reshape(1, -1, samples, 3))  # [1, S·S, T, 3], (x, y, z) in [-1, 1]
    values = F.grid_sample(hulls[:, None].float(), torch.stack(grids), mode="bilinear", align_corners=False)
    size = cameras[0].height
    return (values.reshape(len(cameras), size, size, samples) > 0.5).any(dim=-1)


@torch.no_grad()
def check_orbit_sense(
    masks: np.ndarray,  # [N, H, W] bool, square
    frames: Sequence[int],  # [N] orbit frame of each mask
    *,
    elevation_deg: float,
    radius: float = DEFAULT_RADIUS,
    fov_deg: float = DEFAULT_FOV_DEG,
    grid: int = DEFAULT_GRID,
    size: int = DEFAULT_CHECK_SIZE,
) -> OrbitCheck:
    """Score both azimuth senses by leave-one-out visual-hull silhouette IoU (see module doc)."""
    masks = np.asarray(masks).astype(bool)
    if masks.ndim != 3 or masks.shape[1] != masks.shape[2] or len(masks) != len(frames) or len(masks) < 3:
        raise KeyDiffError(
            "invalid_argument",
            f"masks have shape {masks.shape} for {len(frames)} frames; expected [N>=3, S, S] with one frame index each",
        )
    if not masks.reshape(len(masks), -1).any(axis=1).all():
        raise KeyDiffError("invalid_image", "a generated view has an empty mask; the orbit check needs the object in every view")
    small = _resize_masks(masks, size)  # [N, S, S]
    # Carve inside the region every camera sees face-on (±radius·tan(fov/2) at the origin), a bit beyond.
    half = 1.1 * radius * math.tan(math.radians(fov_deg) / 2.0)
    axis = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2.0 * half - half
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")  # grid_sample's (D, H, W) = (z, y, x)
    points = torch.stack([xx, yy, zz], dim=-1).reshape(-1, 3)  # [G³, 3]

    mean_iou: dict[int, float] = {}
    per_view: dict[int, list[float]] = {}
    for sense in (1, -1):
        cameras = orbit_cameras_for_sense(
            sense, frames, image_size=size, elevation_deg=elevation_deg, radius=radius, fov_deg=fov_deg
        )
        inside = _inside_masks(points, cameras, small)  # [N, G³]
        count = inside.sum(dim=0)  # [G³]
        hulls = ((count[None] - inside.int()) == len(cameras) - 1).reshape(-1, grid, grid, grid)  # [N, G, G, G]
        silhouettes = _hull_silhouettes(hulls, cameras, half, samples=grid)  # [N, S, S]
        union = (silhouettes | small).flatten(1).sum(1).double()  # [N]
        inter = (silhouettes & small).flatten(1).sum(1).double()  # [N]
        scores = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union)).tolist()
        per_view[sense] = scores
        mean_iou[sense] = float(np.mean(scores))
    return OrbitCheck(mean_iou=mean_iou, per_view_iou=per_view, configured_sense=AZIMUTH_SENSE)
