"""The Gaussian density field d(x) = Σ_j α_j exp(-½ (x-μ_j)ᵀ Σ_j⁻¹ (x-μ_j)) over k nearest Gaussians.

SuGaR's regulariser, the level-set extraction and the frosting thickness all evaluate this one field.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .render.projection import quat_to_rotmat


def gaussian_frames(quats: Tensor, log_scales: Tensor) -> tuple[Tensor, Tensor]:
    """Rotations [N, 3, 3] (columns = axes) and scales [N, 3]."""
    return quat_to_rotmat(quats), torch.exp(log_scales)


def density(points: Tensor, neighbours: Tensor, means: Tensor, rots: Tensor, scales: Tensor,
            opacities: Tensor, with_gradient: bool = False):
    """d at points [..., 3] from their neighbour Gaussians [..., k]; optionally ∇d [..., 3].

    Returns (density [...], per-neighbour contributions [..., k], gradient or None).
    """
    diff = points[..., None, :] - means[neighbours]                         # [..., k, 3]
    local = torch.einsum("...kji,...kj->...ki", rots[neighbours], diff) / scales[neighbours]   # Rᵀ(x-μ)/s
    contrib = opacities[neighbours] * torch.exp(-0.5 * (local ** 2).sum(-1))  # [..., k]
    grad = None
    if with_gradient:   # ∇ exp(-½|Rᵀ(x-μ)/s|²) = -e · R (Rᵀ(x-μ)/s²)
        g = torch.einsum("...kij,...kj->...ki", rots[neighbours], local / scales[neighbours])
        grad = -(contrib[..., None] * g).sum(-2)
    return contrib.sum(-1), contrib, grad


def shortest_axis(rots: Tensor, scales: Tensor) -> Tensor:
    """Unit normal [N, 3] of each Gaussian: the axis of its smallest scale."""
    idx = scales.argmin(dim=-1)
    return torch.gather(rots, 2, idx[:, None, None].expand(-1, 3, 1)).squeeze(-1)
