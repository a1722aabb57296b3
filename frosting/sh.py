"""Real spherical harmonics up to degree 3 turned into RGB, with the Inria convention (+0.5, clamp at 0)."""

from __future__ import annotations

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """The degree-0 coefficient that evaluates to `rgb` [..., 3]."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    return sh0 * SH_C0 + 0.5


def sh_to_rgb(coeffs: Tensor, dirs: Tensor) -> Tensor:
    """coeffs [..., K, 3] with K = (d+1)², unit view directions [..., 3] -> colours [..., 3] (>= 0)."""
    k = coeffs.shape[-2]
    out = SH_C0 * coeffs[..., 0, :]
    if k > 1:
        x, y, z = (dirs[..., i:i + 1] for i in range(3))
        out = out - SH_C1 * y * coeffs[..., 1, :] + SH_C1 * z * coeffs[..., 2, :] - SH_C1 * x * coeffs[..., 3, :]
        if k > 4:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out = (out + SH_C2[0] * xy * coeffs[..., 4, :] + SH_C2[1] * yz * coeffs[..., 5, :]
                   + SH_C2[2] * (2 * zz - xx - yy) * coeffs[..., 6, :] + SH_C2[3] * xz * coeffs[..., 7, :]
                   + SH_C2[4] * (xx - yy) * coeffs[..., 8, :])
            if k > 9:
                out = (out + SH_C3[0] * y * (3 * xx - yy) * coeffs[..., 9, :]
                       + SH_C3[1] * xy * z * coeffs[..., 10, :]
                       + SH_C3[2] * y * (4 * zz - xx - yy) * coeffs[..., 11, :]
                       + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * coeffs[..., 12, :]
                       + SH_C3[4] * x * (4 * zz - xx - yy) * coeffs[..., 13, :]
                       + SH_C3[5] * z * (xx - yy) * coeffs[..., 14, :]
                       + SH_C3[6] * x * (xx - 3 * yy) * coeffs[..., 15, :])
    return torch.clamp_min(out + 0.5, 0.0)
