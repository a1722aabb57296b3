"""The slow, readable rasterizer the tests trust: one pixel at a time, every Gaussian, sorted by depth.

It shares nothing with the tiled splatter except `pixel_alpha` and the constants (the clamping rules, and
gsplat's early stop: a pixel takes no Gaussian that would bring its transmittance to T_MIN or below); the
projection is re-derived here per Gaussian with explicit 2x2 algebra. Use only on tiny images.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .projection import T_MIN, pixel_alpha, quat_to_rotmat


def reference_rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
                        viewmat: Tensor, K: Tensor, width: int, height: int, eps2d: float = 0.3,
                        near_plane: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
    """One camera: colours [H, W, D], expected depth [H, W, 1], alpha [H, W, 1] (black background)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lim_xp, lim_xn = (width - cx) / fx + 0.3 * width / (2 * fx), cx / fx + 0.3 * width / (2 * fx)
    lim_yp, lim_yn = (height - cy) / fy + 0.3 * height / (2 * fy), cy / fy + 0.3 * height / (2 * fy)
    splats = []
    for g in range(means.shape[0]):
        p = viewmat[:3, :3] @ means[g] + viewmat[:3, 3]
        if p[2] <= near_plane:
            continue
        rot = quat_to_rotmat(quats[g])
        cov = rot @ torch.diag(scales[g] ** 2) @ rot.T
        cov_cam = viewmat[:3, :3] @ cov @ viewmat[:3, :3].T
        z = p[2]
        tx = z * torch.clamp(p[0] / z, -lim_xn, lim_xp)
        ty = z * torch.clamp(p[1] / z, -lim_yn, lim_yp)
        J = torch.stack([torch.stack([fx / z, 0 * z, -fx * tx / z**2]),
                         torch.stack([0 * z, fy / z, -fy * ty / z**2])])
        cov2 = J @ cov_cam @ J.T + eps2d * torch.eye(2, dtype=means.dtype)
        inv = torch.linalg.inv(cov2)
        conic = torch.stack([inv[0, 0], inv[0, 1], inv[1, 1]])
        mean2 = torch.stack([fx * p[0] / z + cx, fy * p[1] / z + cy])
        splats.append((float(z.detach()), z, mean2, conic, opacities[g], colors[g]))
    splats.sort(key=lambda s: s[0])
    rgb_rows, depth_rows, alpha_rows = [], [], []
    for i in range(height):
        rgb_row, depth_row, alpha_row = [], [], []
        for j in range(width):
            pix = torch.tensor([j + 0.5, i + 0.5], dtype=means.dtype)
            trans = torch.ones((), dtype=means.dtype)
            rgb = torch.zeros(colors.shape[-1], dtype=means.dtype)
            depth = torch.zeros((), dtype=means.dtype)
            for _, z, mean2, conic, opacity, color in splats:
                alpha = pixel_alpha(pix - mean2, conic, opacity)
                if float((trans * (1 - alpha)).detach()) <= T_MIN:       # early termination, as gsplat and 3DGS stop
                    break
                rgb = rgb + trans * alpha * color
                depth = depth + trans * alpha * z
                trans = trans * (1 - alpha)
            alpha_px = 1 - trans
            rgb_row.append(rgb)
            depth_row.append((depth / torch.clamp(alpha_px, min=1e-10))[None])
            alpha_row.append(alpha_px[None])
        rgb_rows.append(torch.stack(rgb_row))
        depth_rows.append(torch.stack(depth_row))
        alpha_rows.append(torch.stack(alpha_row))
    return torch.stack(rgb_rows), torch.stack(depth_rows), torch.stack(alpha_rows)
