"""Skeleton metrics of the auto-rigging literature (reference/rigging.md A12): CD-J2J, CD-J2B, CD-B2B, and joint
precision / recall at a stated tolerance.

All three Chamfer distances are symmetric means, ½·(mean_p min_g d + mean_g min_p d), between
  J2J: the two joint sets,
  J2B: each skeleton's joints and the OTHER skeleton's bone sample points,
  B2B: the two sets of bone sample points.
Bones are parent→child segments sampled every `spacing` (MagicArticulate's 0.005), both ends included, so a
long bone counts by its length. A joint that ends no bone (a lone root) counts as one bone sample, so a
skeleton of several trees is still scored whole.

The numbers only mean something in one normalisation: `unit_cube_transform` centres the mesh on its
bounding-box centre and scales its longest side to span [-1, 1]; callers map both skeletons with it first.
Duplicate joints (closer than `merge_distance`) are merged before scoring, as MagicArticulate does, so a rig
that stacks several joints on one spot is neither rewarded nor punished for it.

Precision / recall (RigNet's joint IoU without the one-to-one matching, whose exact rule is unpublished): a
predicted joint is correct when some reference joint lies within `tolerance`, a reference joint is found
when some predicted joint lies within `tolerance`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import KeyDiffError

DEFAULT_SPACING = 0.005         # bone sample spacing, normalised units (longest side spans 2)
DEFAULT_TOLERANCE = 0.1         # joint match radius, normalised units: 5 % of the longest side
DEFAULT_MERGE_DISTANCE = 1e-4   # joints closer than this are one joint


@dataclass(frozen=True)
class SkeletonScores:
    cd_j2j: float
    cd_j2b: float
    cd_b2b: float
    precision: float          # fraction of predicted joints within `tolerance` of a reference joint
    recall: float             # fraction of reference joints within `tolerance` of a predicted joint
    tolerance: float
    num_joints: int           # predicted, after merging duplicates
    num_bones: int            # predicted parent→child segments of non-zero length
    num_true_joints: int
    num_true_bones: int

    def to_dict(self) -> dict:
        return asdict(self)


def unit_cube_transform(vertices: np.ndarray) -> np.ndarray:
    """[4, 4] similarity putting the bounding-box centre at 0 and the longest side on [-1, 1]."""
    vertices = _points(vertices, "vertices")
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    longest = float((hi - lo).max())
    if longest <= 0:
        raise KeyDiffError("invalid_mesh", "all vertices coincide: the mesh has no extent to normalise by")
    scale = 2.0 / longest
    matrix = np.eye(4)
    matrix[:3, :3] *= scale
    matrix[:3, 3] = -scale * (lo + hi) / 2.0
    return matrix


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ matrix[:3, :3].T + matrix[:3, 3]


def sample_bones(joints: np.ndarray, parents: np.ndarray, spacing: float = DEFAULT_SPACING) -> np.ndarray:
    """[S, 3] points every ≤ `spacing` along each parent→child segment (ends included); lone joints once."""
    joints, parents = _skeleton(joints, parents, "joints")
    if not spacing > 0:
        raise KeyDiffError("invalid_argument", f"spacing must be a positive length, got {spacing}")
    child = np.flatnonzero(parents >= 0)
    heads, tails = joints[parents[child]], joints[child]                   # [E, 3]
    lengths = np.linalg.norm(tails - heads, axis=1)
    steps = np.maximum(np.ceil(lengths / spacing).astype(np.int64), 1)   # intervals per bone
    bone = np.repeat(np.arange(len(child)), steps + 1)                   # [S_e]
    starts = np.cumsum(steps + 1) - (steps + 1)
    t = (np.arange(len(bone)) - starts[bone]) / steps[bone]              # 0..1 inclusive per bone
    samples = heads[bone] + t[:, None] * (tails[bone] - heads[bone])
    on_bone = np.zeros(len(joints), bool)
    on_bone[child] = True
    on_bone[parents[child]] = True
    return np.concatenate([samples, joints[~on_bone]])


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance ½·(mean_a min_b |a-b| + mean_b min_a |a-b|)."""
    d_ab = cKDTree(b).query(a)[0]
    d_ba = cKDTree(a).query(b)[0]
    return 0.5 * (float(d_ab.mean()) + float(d_ba.mean()))


def merge_duplicate_joints(joints: np.ndarray, parents: np.ndarray, distance: float = DEFAULT_MERGE_DISTANCE):
    """(joints [J', 3], parents [J']) with joints closer than `distance` merged (single linkage, mean position).

    Bones between two merged joints vanish; every other bone keeps its ends' merged joints.
    """
    joints, parents = _skeleton(joints, parents, "joints")
    pairs = cKDTree(joints).query_pairs(distance, output_type="ndarray")
    n = len(joints)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)) if len(pairs) else coo_matrix((n, n))
    count, label = connected_components(graph, directed=False)
    merged = np.zeros((count, 3))
    np.add.at(merged, label, joints)
    merged /= np.bincount(label, minlength=count)[:, None]
    # A bone survives when its ends fall in different groups; the child's group takes the parent's group.
    new_parents = np.full(count, -1, np.int64)
    child = np.flatnonzero(parents >= 0)
    keep = label[child] != label[parents[child]]
    new_parents[label[child[keep]]] = label[parents[child[keep]]]
    _break_cycles(new_parents)
    return merged, new_parents


def skeleton_metrics(
    joints: np.ndarray,
    parents: np.ndarray,
    true_joints: np.ndarray,
    true_parents: np.ndarray,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    spacing: float = DEFAULT_SPACING,
    merge_distance: float = DEFAULT_MERGE_DISTANCE,
) -> SkeletonScores:
    """Score a predicted skeleton against the reference one; both already in the unit-cube normalisation.

    parents: [J] parent joint index, -1 for roots (several roots allowed).
    """
    if not tolerance > 0:
        raise KeyDiffError("invalid_argument", f"tolerance must be a positive length, got {tolerance}")
    joints, parents = merge_duplicate_joints(joints, parents, merge_distance)
    true_joints, true_parents = merge_duplicate_joints(true_joints, true_parents, merge_distance)
    bones, true_bones = sample_bones(joints, parents, spacing), sample_bones(true_joints, true_parents, spacing)

    j2b = 0.5 * (float(cKDTree(true_bones).query(joints)[0].mean()) + float(cKDTree(bones).query(true_joints)[0].mean()))
    to_true = cKDTree(true_joints).query(joints)[0]        # [J] nearest reference joint
    to_pred = cKDTree(joints).query(true_joints)[0]        # [G] nearest predicted joint
    return SkeletonScores(
        cd_j2j=0.5 * (float(to_true.mean()) + float(to_pred.mean())),
        cd_j2b=j2b,
        cd_b2b=chamfer(bones, true_bones),
        precision=float((to_true <= tolerance).mean()),
        recall=float((to_pred <= tolerance).mean()),
        tolerance=float(tolerance),
        num_joints=len(joints),
        num_bones=int((parents >= 0).sum()),
        num_true_joints=len(true_joints),
        num_true_bones=int((true_parents >= 0).sum()),
    )


def _break_cycles(parents: np.ndarray) -> None:
    """Merging can join a bone's two ends through a third joint and close a loop; cut it at the loop's entry."""
    for start in range(len(parents)):
        seen, j = set(), start
        while j >= 0 and j not in seen:
            seen.add(j)
            j = parents[j]
        if j >= 0:
            parents[j] = -1


def _points(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, np.float64)
    if array.ndim != 2 or array.shape[1] != 3 or len(array) == 0:
        raise KeyDiffError("invalid_argument", f"{name} must have shape (N, 3) with N > 0, got {array.shape}")
    if not np.isfinite(array).all():
        raise KeyDiffError("invalid_argument", f"{name} contain NaN or infinite coordinates")
    return array


def _skeleton(joints: np.ndarray, parents: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    joints = _points(joints, name)
    parents = np.asarray(parents, np.int64)
    if parents.shape != (len(joints),):
        raise KeyDiffError("invalid_argument", f"parents must have shape ({len(joints)},), got {parents.shape}")
    if len(parents) and (parents.min() < -1 or parents.max() >= len(joints) or (parents == np.arange(len(joints))).any()):
        raise KeyDiffError("invalid_argument", f"parents must be joint indices in [-1, {len(joints) - 1}], none its own parent")
    return joints, parents
