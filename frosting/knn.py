"""k nearest neighbours on CPU (scipy's cKDTree), replacing PyTorch3D knn_points and simple-knn."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor


def knn(points: Tensor, queries: Tensor, k: int) -> Tensor:
    """Indices [Q, k] of the k nearest `points` [N, 3] to each query [Q, 3] (k clipped to N)."""
    k = min(k, points.shape[0])
    tree = cKDTree(points.detach().cpu().numpy().astype(np.float64))
    _, idx = tree.query(queries.detach().cpu().numpy().astype(np.float64), k=k, workers=-1)
    return torch.from_numpy(np.asarray(idx).reshape(len(queries), k)).to(points.device)


def mean_neighbour_distance(points: Tensor, k: int = 3) -> Tensor:
    """Root mean squared distance [N] to the k nearest other points (3DGS's initial scale, `distCUDA2`)."""
    pts = points.detach().cpu().numpy().astype(np.float64)
    dist, _ = cKDTree(pts).query(pts, k=min(k + 1, len(pts)), workers=-1)
    dist = np.asarray(dist).reshape(len(pts), -1)[:, 1:]
    rms = np.sqrt((dist ** 2).mean(axis=1)) if dist.shape[1] else np.ones(len(pts))
    return torch.from_numpy(np.maximum(rms, 1e-7)).to(points)
