"""EWA projection of 3D Gaussians to screen-space ellipses, in plain PyTorch (any device).

Both the CPU splatter and the brute-force reference build on the same maths: camera-space covariance
W Σ Wᵀ, the perspective Jacobian (with its x/z, y/z clamped a little beyond the frustum, as the Inria and
gsplat kernels do, so Gaussians far off screen cannot blow up), a 2D low-pass `eps2d` added to the diagonal,
and optionally Mip-Splatting's opacity compensation ("antialiased"). Pixel centres sit at (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

ALPHA_MIN: float = 1.0 / 255.0   # a Gaussian contributes to a pixel only from this alpha up (gsplat, Inria)
ALPHA_MAX: float = 0.999         # alphas are clamped here so transmittance never reaches exactly 0
T_MIN: float = 1e-4              # a pixel takes no Gaussian that would bring its transmittance to <= this (gsplat)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Unit-normalised wxyz quaternions [..., 4] -> rotation matrices [..., 3, 3]."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def covariances(quats: Tensor, scales: Tensor) -> Tensor:
    """World covariances R S Sᵀ Rᵀ [N, 3, 3] from quats [N, 4] (wxyz) and positive scales [N, 3]."""
    m = quat_to_rotmat(quats) * scales[:, None, :]          # [N, 3, 3] = R S
    return m @ m.transpose(-1, -2)


@dataclass
class Projection:
    """Screen-space Gaussians for C cameras; `visible` False means culled (behind, outside, degenerate)."""

    means2d: Tensor     # [C, N, 2] pixels
    conics: Tensor      # [C, N, 3] (a, b, c) of the inverse 2D covariance [[a, b], [b, c]]
    depths: Tensor      # [C, N] camera z
    opacities: Tensor   # [C, N] after the optional antialias compensation
    extents: Tensor     # [C, N, 2] half-size in pixels of the box where alpha >= ALPHA_MIN
    visible: Tensor     # [C, N] bool


def project(means: Tensor, covars: Tensor, opacities: Tensor, viewmats: Tensor, Ks: Tensor,
            width: int, height: int, near_plane: float = 0.01, far_plane: float = 1e10,
            eps2d: float = 0.3, antialiased: bool = False) -> Projection:
    """Project N Gaussians (means [N, 3], covars [N, 3, 3], opacities [N]) into C cameras.

    viewmats [C, 4, 4] world-to-camera (OpenCV: +z forward, y down); Ks [C, 3, 3] pixel intrinsics.
    """
    R, t = viewmats[:, None, :3, :3], viewmats[:, None, :3, 3]            # [C, 1, 3, 3], [C, 1, 3]
    cam = (R @ means[None, :, :, None]).squeeze(-1) + t                    # [C, N, 3]
    cov_cam = R @ covars[None] @ R.transpose(-1, -2)                      # [C, N, 3, 3]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]                         # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    x, y, z = cam.unbind(-1)                                              # [C, N]
    safe_z = torch.where(z.abs() < 1e-8, torch.full_like(z, 1e-8), z)
    # Clamp the Jacobian's lateral position to 1.3x the half field of view (off-screen stability).
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * width / (2 * fx), cx / fx + 0.3 * width / (2 * fx)
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * height / (2 * fy), cy / fy + 0.3 * height / (2 * fy)
    tx = safe_z * torch.minimum(torch.maximum(x / safe_z, -lim_x_neg), lim_x_pos)
    ty = safe_z * torch.minimum(torch.maximum(y / safe_z, -lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / safe_z, zero, -fx * tx / safe_z**2,
                     zero, fy / safe_z, -fy * ty / safe_z**2], dim=-1).reshape(z.shape + (2, 3))
    cov2d = J @ cov_cam @ J.transpose(-1, -2)                             # [C, N, 2, 2]
    a, b, c = cov2d[..., 0, 0], cov2d[..., 0, 1], cov2d[..., 1, 1]
    det_raw = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b
    opac = opacities[None].expand_as(z)
    if antialiased:
        opac = opac * torch.sqrt(torch.clamp(det_raw / det.clamp_min(1e-12), min=0.0))
    safe_det = torch.where(det > 1e-12, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)
    means2d = torch.stack([fx * x / safe_z + cx, fy * y / safe_z + cy], dim=-1)
    # alpha = o exp(-s) >= ALPHA_MIN  <=>  s <= log(o / ALPHA_MIN); that ellipse's box has half-size
    # sqrt(2 s_max var_axis): an exact bound, so tiling never drops a contribution the reference keeps.
    with torch.no_grad():
        sigma_max = torch.log(opac.clamp(min=1e-12) / ALPHA_MIN).clamp_min(0.0)
        extents = torch.sqrt(2 * sigma_max[..., None] * torch.stack([a, c], dim=-1).clamp_min(0.0))
        visible = (z > near_plane) & (z < far_plane) & (det > 1e-12) & (opac >= ALPHA_MIN)
        on_screen = ((means2d + extents) >= 0).all(-1) & (means2d[..., 0] - extents[..., 0] <= width) \
            & (means2d[..., 1] - extents[..., 1] <= height)
        visible &= on_screen & torch.isfinite(means2d).all(-1)
    return Projection(means2d=means2d, conics=conics, depths=z, opacities=opac, extents=extents, visible=visible)


def pixel_alpha(delta: Tensor, conics: Tensor, opacities: Tensor) -> Tensor:
    """Alpha of Gaussians at offsets delta [..., 2] = (pixel centre - mean2d), with gsplat's clamping rules.

    conics [..., 3], opacities [...]; returns [...] with values below ALPHA_MIN (or negative exponents from a
    numerically indefinite conic) set to exactly 0.
    """
    dx, dy = delta.unbind(-1)
    a, b, c = conics.unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp(opacities * torch.exp(-sigma), max=ALPHA_MAX)
    keep = (sigma >= 0) & (alpha >= ALPHA_MIN)
    return torch.where(keep, alpha, torch.zeros_like(alpha))


def fov_focal(fov_deg: float, size: int) -> float:
    """Focal length in pixels for a field of view across `size` pixels (small helper for tests/scripts)."""
    return size / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
