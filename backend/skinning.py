"""Gaussian-distance skinning (KeyDiff3D Eq. 9): bind mesh vertices to the bones of a Rig.

The paper weights vertex i for bone l by a Gaussian of the distance between the vertex and the bone; its two
constants (called α/β in the notes) were not published (reference/keypoints.md). We use

    w_il  ∝  exp( -½ · (d_il / σ) ** sharpness ),      σ = sigma_scale · (bounding-box diagonal of the mesh)

where d_il is the MINIMUM distance from the vertex to bone l's segment (head → tail), not to a joint, so a
long bone owns its whole length. sharpness = 2 is the plain Gaussian; larger values make the fall-off steeper
(closer to rigid nearest-bone binding), smaller values blend more. sigma_scale = 0.02 with sharpness 2 is the
best single value measured against artist weights on data/rigs (reference/skinning_baselines.md).

Why this shape of code:
- Weights fall monotonically with distance, so the k heaviest bones are the k nearest segments: we select
  them on squared distances and only ever exponentiate a [V, k] block, never [V, B].
- The exponent is taken relative to the row's nearest bone, so the nearest bone always gets exp(0) = 1 before
  normalising. A vertex far from every bone (which would underflow to an all-zero row with a raw Gaussian)
  therefore still binds rigidly to its nearest bone: no vertex is ever left without weight.
- Distances are computed in vertex chunks with the |p - a - t·u|² expansion (two small matmuls + elementwise
  work on a [chunk, B] block), so memory stays bounded for any mesh size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import KeyDiffError
from .rig import Rig, SkinWeights

DEFAULT_SIGMA_SCALE = 0.02
DEFAULT_SHARPNESS = 2.0
DEFAULT_TOP_K = 4
# Elements of one [chunk, B] working block: ~0.5 M float32 = 2 MB per temporary stays cache-friendly while
# amortising numpy's per-call overhead (200k x 50: 1<<18..1<<19 fastest, 1<<22 ~25 % slower; benchmarks/skinning.py).
DEFAULT_BLOCK_ELEMENTS = 1 << 19


def point_segment_distances(
    points: np.ndarray,
    heads: np.ndarray,
    tails: np.ndarray,
    *,
    dtype: type = np.float64,
    chunk_size: int | None = None,
) -> np.ndarray:
    """[V, B] Euclidean distance from each point to each segment head→tail (a zero-length segment is a point).

    points: [V, 3]; heads, tails: [B, 3]. float64 by default (exact enough for metrics and tests); pass
    dtype=np.float32 for speed when a relative error of ~1e-3 of the object size does not matter.
    """
    points = _as_points(points, "points")
    heads, tails = _as_points(heads, "heads"), _as_points(tails, "tails")
    if heads.shape != tails.shape:
        raise KeyDiffError("invalid_argument", f"heads {heads.shape} and tails {tails.shape} must have the same shape")
    chunk = _chunk(chunk_size, len(heads))
    out = np.empty((len(points), len(heads)), dtype=dtype)   # [V, B]
    if len(heads) == 0:
        return out
    segments = _Segments.build(heads, tails, dtype)
    for start in range(0, len(points), chunk):
        block = segments.squared_distances(points[start:start + chunk])
        np.sqrt(block, out=out[start:start + chunk])
    return out


def gaussian_distance_weights(
    vertices: np.ndarray,
    rig: Rig,
    *,
    sigma_scale: float = DEFAULT_SIGMA_SCALE,
    sharpness: float = DEFAULT_SHARPNESS,
    top_k: int = DEFAULT_TOP_K,
    object_size: float | None = None,
    chunk_size: int | None = None,
) -> SkinWeights:
    """Sparse skin weights of `vertices` [V, 3] for the deforming bones of `rig` (see the module docstring).

    object_size: the length σ is relative to; default the bounding-box diagonal of the vertices and joints
    together (the mesh's own diagonal whenever the skeleton lies inside it, and still defined for one vertex).
    Returns k = min(top_k, rig.num_bones) slots per vertex, heaviest first, rows summing to 1; slots beyond
    the number of deforming bones (or whose weight underflows) carry weight 0 and bone index 0.
    """
    vertices = _validate_vertices(vertices)
    _validate_settings(sigma_scale, sharpness, top_k)
    deforming = np.flatnonzero(rig.bone_deforms)
    if len(deforming) == 0:
        raise KeyDiffError("invalid_rig", f"the rig has {rig.num_bones} bones but none deforms: nothing to skin to")
    sigma = sigma_scale * _object_size(np.concatenate([vertices, rig.joints]), object_size)

    num_slots = min(top_k, rig.num_bones)
    k = min(num_slots, len(deforming))
    segments = _Segments.build(rig.bone_heads[deforming], rig.bone_tails[deforming], np.float32)
    chunk = _chunk(chunk_size, len(deforming))
    indices = np.zeros((len(vertices), num_slots), np.int32)    # [V, k]
    weights = np.zeros((len(vertices), num_slots), np.float32)  # [V, k]
    for start in range(0, len(vertices), chunk):
        stop = min(start + chunk, len(vertices))
        dist2 = segments.squared_distances(vertices[start:stop])                  # [c, D]
        nearest = _k_smallest(dist2, k)                                           # [c, k], nearest first
        near_dist2 = np.take_along_axis(dist2, nearest, axis=1).astype(np.float64)
        # -log w relative to the nearest bone: ½·((d/σ)^s − (d_min/σ)^s) >= 0, so the first slot gets exp(0) = 1.
        energy = 0.5 * (near_dist2 / sigma**2) ** (0.5 * sharpness)
        slot_weights = np.exp(-(energy - energy[:, :1]))
        slot_weights /= slot_weights.sum(axis=1, keepdims=True)
        slot_bones = np.where(slot_weights > 0, deforming[nearest], 0)
        indices[start:stop, :k] = slot_bones
        weights[start:stop, :k] = slot_weights
    return SkinWeights(indices, weights, rig.num_bones)


@dataclass(frozen=True)
class _Segments:
    """Segment constants computed once, shifted to the segments' centroid to limit float32 cancellation."""

    centre: np.ndarray          # [3] float64, subtracted from points and heads
    stacked: np.ndarray         # [3, 2B] columns a | u, so one matmul gives p·a and p·u
    axes_len2: np.ndarray       # [B] |u|², u = tail - head
    axes_inv_len2: np.ndarray   # [B] 1/|u|², 0 for zero-length segments (t stays 0: distance to the head)
    heads_len2: np.ndarray      # [B] |a|², a = head - centre
    heads_dot_axes: np.ndarray  # [B] a·u

    @classmethod
    def build(cls, heads: np.ndarray, tails: np.ndarray, dtype: type) -> "_Segments":
        centre = np.concatenate([heads, tails]).mean(axis=0)
        a = heads - centre                                         # [B, 3]
        u = tails - heads                                          # [B, 3]
        len2 = np.einsum("bi,bi->b", u, u)
        inv_len2 = np.divide(1.0, len2, out=np.zeros_like(len2), where=len2 > 0)
        return cls(
            centre=centre,
            stacked=np.concatenate([a, u], axis=0).T.astype(dtype),
            axes_len2=len2.astype(dtype),
            axes_inv_len2=inv_len2.astype(dtype),
            heads_len2=np.einsum("bi,bi->b", a, a).astype(dtype),
            heads_dot_axes=np.einsum("bi,bi->b", a, u).astype(dtype),
        )

    def squared_distances(self, points: np.ndarray) -> np.ndarray:
        """[c, B] squared point-to-segment distances for a chunk of points [c, 3]."""
        num_segments = self.axes_len2.shape[0]
        p = (points - self.centre).astype(self.stacked.dtype)         # [c, 3]
        products = p @ self.stacked                                    # [c, 2B]: p·a | p·u
        p_dot_a, p_dot_u = products[:, :num_segments], products[:, num_segments:]
        proj = np.subtract(p_dot_u, self.heads_dot_axes)              # [c, B] (p - a)·u
        t = proj * self.axes_inv_len2
        np.clip(t, 0.0, 1.0, out=t)                                    # nearest point's place on the segment
        # |p - a - t·u|² = |p - a|² - t·(2 (p - a)·u - t·|u|²), valid for clamped and unclamped t alike.
        proj *= 2.0
        proj -= t * self.axes_len2
        proj *= t
        dist2 = np.einsum("ci,ci->c", p, p)[:, None] - 2.0 * p_dot_a  # |p - a|² = |p|² - 2 p·a + |a|²
        dist2 += self.heads_len2
        dist2 -= proj
        np.maximum(dist2, 0.0, out=dist2)
        return dist2


def _k_smallest(values: np.ndarray, k: int) -> np.ndarray:
    """[c, k] column indices of the k smallest entries per row, sorted ascending by value."""
    if k < values.shape[1]:
        picked = np.argpartition(values, k - 1, axis=1)[:, :k]
    else:
        picked = np.broadcast_to(np.arange(values.shape[1]), values.shape).copy()
    order = np.argsort(np.take_along_axis(values, picked, axis=1), axis=1, kind="stable")
    return np.take_along_axis(picked, order, axis=1)


def _chunk(chunk_size: int | None, num_segments: int) -> int:
    """Vertices per block: the caller's choice, else about DEFAULT_BLOCK_ELEMENTS pairs per block."""
    if chunk_size is None:
        return max(256, DEFAULT_BLOCK_ELEMENTS // max(num_segments, 1))
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise KeyDiffError("invalid_argument", f"chunk_size must be a positive integer, got {chunk_size}")
    return int(chunk_size)


def _object_size(points: np.ndarray, object_size: float | None) -> float:
    if object_size is None:
        object_size = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
        if object_size <= 0:
            raise KeyDiffError("invalid_mesh", "all vertices and joints coincide: nothing to scale σ by")
    elif not np.isfinite(object_size) or object_size <= 0:
        raise KeyDiffError("invalid_argument", f"object_size must be a positive length, got {object_size}")
    return float(object_size)


def _validate_vertices(vertices: np.ndarray) -> np.ndarray:
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] == 0:
        raise KeyDiffError("invalid_mesh", f"vertices must have shape (V, 3) with V > 0, got {vertices.shape}")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise KeyDiffError("invalid_mesh", f"{bad} of {len(vertices)} vertices have NaN or infinite coordinates")
    return vertices


def _validate_settings(sigma_scale: float, sharpness: float, top_k: int) -> None:
    if not np.isfinite(sigma_scale) or sigma_scale <= 0:
        raise KeyDiffError("invalid_argument", f"sigma_scale must be > 0 (fraction of the object size), got {sigma_scale}")
    if not np.isfinite(sharpness) or sharpness <= 0:
        raise KeyDiffError("invalid_argument", f"sharpness must be > 0 (2 = Gaussian), got {sharpness}")
    if int(top_k) != top_k or top_k < 1:
        raise KeyDiffError("invalid_argument", f"top_k must be a positive integer, got {top_k}")


def _as_points(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise KeyDiffError("invalid_argument", f"{name} must have shape (N, 3), got {array.shape}")
    if not np.isfinite(array).all():
        raise KeyDiffError("invalid_argument", f"{name} contain NaN or infinite coordinates")
    return array
