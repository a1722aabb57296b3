"""Differentiable edge maps: projected keypoint pairs drawn as Gaussian lines, weighted, max over pairs.

L_ij(u) = w_ij * exp(-d(u, segment_ij)^2 / (2 sigma^2)), E(u) = max_ij L_ij(u), with d the exact
point-to-segment distance in [-1, 1] image coordinates (AutoLink) and w = softplus(A) from the network.

The max is computed in two passes (measured in reference/cpu_training_cost.md as the only form that stays
cheap): pass 1, without autograd and in chunks of pairs, finds the winning pair per pixel; pass 2 recomputes
only that pair's value with autograd. The gradient equals the one of `amax` over all pairs (a subgradient
at ties) at O(N * S^2) autograd memory instead of O(N * pairs * S^2).
"""

from __future__ import annotations

import torch


def pixel_grid(size: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel centres of an S x S map in [-1, 1] coordinates (x right, y down), flattened row-major. [S*S, 2]"""
    axis = (torch.arange(size, device=device, dtype=dtype) + 0.5) * (2.0 / size) - 1.0
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs, ys], dim=-1).reshape(-1, 2)


def upper_pairs(num_keypoints: int, device: torch.device | str | None = None) -> torch.Tensor:
    """All i < j pairs. [P, 2] with P = K (K - 1) / 2"""
    return torch.triu_indices(num_keypoints, num_keypoints, offset=1, device=device).T


def segment_distance_sq(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Exact squared distance from points to segments, broadcasting over leading dims. [...]

    points, start, end: [..., 2]. The projection parameter is clamped to [0, 1], so beyond an end the
    distance is to that end point.
    """
    direction = end - start
    length_sq = (direction * direction).sum(-1).clamp(min=1e-12)
    t = (((points - start) * direction).sum(-1) / length_sq).clamp(0.0, 1.0)
    closest = start + t.unsqueeze(-1) * direction
    return ((points - closest) ** 2).sum(-1)


def render_edge_maps(
    keypoints_2d: torch.Tensor,
    adjacency: torch.Tensor,
    size: int,
    sigma: float,
    chunk: int = 64,
) -> torch.Tensor:
    """Edge maps of projected keypoints.

    keypoints_2d: [N, K, 2] in [-1, 1] image coordinates (x right, y down); adjacency: [K, K] symmetric
    weights (softplus already applied). Returns [N, 1, S, S].
    """
    count, num_keypoints, _ = keypoints_2d.shape
    pairs = upper_pairs(num_keypoints, keypoints_2d.device)  # [P, 2]
    weights = adjacency[pairs[:, 0], pairs[:, 1]]  # [P]
    grid = pixel_grid(size, keypoints_2d.device, keypoints_2d.dtype)  # [S*S, 2]
    scale = -1.0 / (2.0 * sigma * sigma)

    # Pass 1: the winning pair per pixel, no autograd. exp is monotonic, so the pair maximising w * exp(scale d^2)
    # maximises log w + scale d^2: no exp over all pairs. The distance is segment_distance_sq's, written out with x
    # and y apart and in place: calling it here (it must stay autograd-safe for pass 2) allocates a fresh
    # [N, p, S*S] tensor per op and measured 2-2.5x slower at N = 2, K = 18, S = 64 (benchmarks/edge_maps.py).
    with torch.no_grad():
        log_weights = weights.log()
        grid_x, grid_y = grid[:, 0], grid[:, 1]  # [S*S]
        best_score = torch.full((count, grid.shape[0]), -torch.inf, device=grid.device, dtype=grid.dtype)
        best_pair = torch.zeros((count, grid.shape[0]), device=grid.device, dtype=torch.long)
        for first in range(0, pairs.shape[0], chunk):
            chunk_pairs = pairs[first : first + chunk]  # [p, 2]
            start = keypoints_2d[:, chunk_pairs[:, 0]]  # [N, p, 2]
            direction = keypoints_2d[:, chunk_pairs[:, 1]] - start
            start_x, start_y = start[..., 0:1], start[..., 1:2]  # [N, p, 1]
            dir_x, dir_y = direction[..., 0:1], direction[..., 1:2]
            inverse_length_sq = 1.0 / (dir_x * dir_x + dir_y * dir_y).clamp(min=1e-12)
            offset_x, offset_y = grid_x - start_x, grid_y - start_y  # [N, p, S*S]
            t = (offset_x * dir_x).add_(offset_y * dir_y).mul_(inverse_length_sq).clamp_(0.0, 1.0)
            offset_x.sub_(t * dir_x)
            offset_y.sub_(t.mul_(dir_y))  # now the vector from the closest point of the segment
            score = offset_x.square_().add_(offset_y.square_()).mul_(scale).add_(log_weights[first : first + chunk].view(1, -1, 1))
            chunk_score, chunk_index = score.max(dim=1)  # [N, S*S]
            better = chunk_score > best_score
            best_score = torch.where(better, chunk_score, best_score)
            best_pair = torch.where(better, chunk_index + first, best_pair)

    # Pass 2: recompute only the winner, with autograd.
    winner = pairs[best_pair]  # [N, S*S, 2]
    start = torch.gather(keypoints_2d, 1, winner[..., 0:1].expand(-1, -1, 2))  # [N, S*S, 2]
    end = torch.gather(keypoints_2d, 1, winner[..., 1:2].expand(-1, -1, 2))
    edge = weights[best_pair] * torch.exp(scale * segment_distance_sq(grid.unsqueeze(0), start, end))  # [N, S*S]
    return edge.view(count, 1, size, size)


def render_edge_maps_reference(keypoints_2d: torch.Tensor, adjacency: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """The same maps by brute force (all pairs materialised, `amax`); the tests trust this one."""
    pairs = upper_pairs(keypoints_2d.shape[1], keypoints_2d.device)
    grid = pixel_grid(size, keypoints_2d.device, keypoints_2d.dtype)
    start = keypoints_2d[:, pairs[:, 0]].unsqueeze(2)
    end = keypoints_2d[:, pairs[:, 1]].unsqueeze(2)
    lines = adjacency[pairs[:, 0], pairs[:, 1]].view(1, -1, 1) * torch.exp(-segment_distance_sq(grid, start, end) / (2 * sigma**2))
    return lines.amax(dim=1).view(-1, 1, size, size)
