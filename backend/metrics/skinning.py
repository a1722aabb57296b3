"""Skinning metrics on the TRUE skeleton (reference/rigging.md A12 and skinning_baselines.md), so weights are
scored apart from skeleton errors.

- precision / recall of influences and L1, as Puppeteer computes them: predicted weights below 1e-3 are
  dropped and rows renormalised; precision = |pred>0 ∧ true>0| / |pred>0|, recall = the same / |true>0|,
  L1 = Σ|pred − true| / V (the mean per-vertex L1 distance of the weight rows).
- deformation error (RigNet #58): pose the rig, deform the mesh with the reference and the predicted weights,
  and measure how far each predicted vertex lands from its reference position; mean and max over vertices
  and poses. Poses: every deforming bone rotated about its head by a uniformly random axis and an angle
  uniform in [0°, max_degrees], composed down the bone tree; link bones are never posed.

Weights enter as dense [V, B] rows so a method that leaves vertices unweighted can be scored the way Blender
deforms them: a row that sums to 0 stays at its rest position, any other row is normalised (Blender's
Armature modifier divides by the total weight). Meshes here have thousands of vertices, so dense is cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import KeyDiffError
from ..posing import bone_transforms, random_rotations
from ..rig import Rig

WEIGHT_FLOOR = 1e-3            # Puppeteer: predicted weights below this do not count as influences
DEFAULT_NUM_POSES = 20
DEFAULT_MAX_DEGREES = 45.0
DEFAULT_SEED = 0


@dataclass(frozen=True)
class SkinningScores:
    precision: float
    recall: float
    l1: float
    deformation_error_mean: float
    deformation_error_max: float
    unweighted_vertices: int     # rows with no weight at all (they do not move when posed)

    def to_dict(self) -> dict:
        return asdict(self)


def benchmark_poses(
    rig: Rig, num_poses: int = DEFAULT_NUM_POSES, max_degrees: float = DEFAULT_MAX_DEGREES, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """[P, B, 4, 4] bone transforms of the benchmark's random poses (same seed → same poses)."""
    if int(num_poses) != num_poses or num_poses < 1:
        raise KeyDiffError("invalid_argument", f"num_poses must be a positive integer, got {num_poses}")
    if not 0 <= max_degrees <= 180:
        raise KeyDiffError("invalid_argument", f"max_degrees must lie in [0, 180], got {max_degrees}")
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(int(num_poses)):
        rotations = random_rotations(rig.num_bones, max_degrees, rng)   # [B, 3, 3]
        rotations[~rig.bone_deforms] = np.eye(3)
        poses.append(bone_transforms(rig, rotations))
    return np.stack(poses)


def deform(vertices: np.ndarray, weights: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """[V, 3] linear blend skinning with dense weights [V, B]; rows are normalised, zero rows stay at rest."""
    totals = weights.sum(axis=1, keepdims=True)                           # [V, 1]
    normalised = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    blended = np.einsum("vb,bij->vij", normalised, transforms[:, :3, :])  # [V, 3, 4]
    moved = np.einsum("vij,vj->vi", blended[:, :, :3], vertices) + blended[:, :, 3]
    return np.where(totals > 0, moved, vertices)


def influence_scores(weights: np.ndarray, true_weights: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, L1) of dense predicted rows [V, B] against the reference rows [V, B]."""
    pred = np.where(weights >= WEIGHT_FLOOR, weights, 0.0)
    totals = pred.sum(axis=1, keepdims=True)
    pred = np.divide(pred, totals, out=np.zeros_like(pred), where=totals > 0)
    predicted, true = pred > 0, true_weights > 0
    both = float((predicted & true).sum())
    precision = both / max(float(predicted.sum()), 1.0)
    recall = both / max(float(true.sum()), 1.0)
    l1 = float(np.abs(pred - true_weights).sum(axis=1).mean())
    return precision, recall, l1


def skinning_metrics(
    vertices: np.ndarray,
    rig: Rig,
    weights: np.ndarray,
    true_weights: np.ndarray,
    *,
    poses: np.ndarray | None = None,
) -> SkinningScores:
    """Score dense weights [V, B] against the reference [V, B] on `rig` (vertices in the unit-cube frame).

    poses: [P, B, 4, 4] from `benchmark_poses` (computed with the defaults when None); pass the same array
    for every method so all are posed alike.
    """
    vertices = np.asarray(vertices, np.float64)
    weights, true_weights = np.asarray(weights, np.float64), np.asarray(true_weights, np.float64)
    expected = (len(vertices), rig.num_bones)
    for name, array in (("weights", weights), ("true_weights", true_weights)):
        if array.shape != expected:
            raise KeyDiffError("invalid_argument", f"{name} must have shape {expected} (vertices, bones), got {array.shape}")
        if not np.isfinite(array).all() or (array < 0).any():
            raise KeyDiffError("invalid_argument", f"{name} must be finite and >= 0")
    if poses is None:
        poses = benchmark_poses(rig)
    precision, recall, l1 = influence_scores(weights, true_weights)
    errors = np.stack([
        np.linalg.norm(deform(vertices, weights, pose) - deform(vertices, true_weights, pose), axis=1)
        for pose in poses
    ])                                                                    # [P, V]
    return SkinningScores(
        precision=precision, recall=recall, l1=l1,
        deformation_error_mean=float(errors.mean()), deformation_error_max=float(errors.max()),
        unweighted_vertices=int((weights.sum(axis=1) <= 0).sum()),
    )
