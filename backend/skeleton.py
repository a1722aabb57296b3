"""Keypoints + predicted edge weights → a tree of bones (the Rig), by a minimum spanning tree.

The keypoint network gives K points and a symmetric K×K adjacency (softplus, ≥ 0, larger = more likely a
bone). Three steps turn that into a skeleton:

1. Merge collapsed keypoints. Unsupervised keypoints often land on top of each other; two joints closer than
   `merge_fraction` × object size (default 0.02 × the keypoints' bounding-box diagonal) are one joint.
   Merging is single-linkage (connected components of the "closer than the threshold" graph); a merged
   joint sits at the mean of its keypoints and its edge weight to another joint is the max over the pairs.
2. MST over the complete graph of joints with the cost

       cost_ij = distance_weight · d_ij / d_scale  −  log(w̃_ij + ε),     w̃ = w / max(w) ∈ [0, 1], ε = 1e-3

   d_scale is the mean edge length of the distance-only MST (a typical bone length), so the first term counts
   bone lengths. Why this form: an MST depends only on the ORDER of the costs, so
   - uniform (uninformative) weights add the same constant to every edge → exactly the distance MST;
   - zero weights everywhere (or between two parts) all get the same penalty −log ε ≈ 6.9 → those parts are
     joined by distance; the graph is complete, so the tree always spans every joint;
   - confident weights (w̃ ≈ 1 on bones, ≈ 0 elsewhere) make a non-bone edge cost ≈ 6.9 bone lengths more,
     so the predicted bones win unless they are that much longer (distance_weight = 1);
   - mildly noisy weights (w̃ ∈ [0.9, 1]) shift costs by < 0.11 bone lengths: distance still decides.
   distance_weight trades the two: 0 = weights only, large = distance only.
3. Root = the tree's centre: the joint whose farthest joint is the fewest bones away (minimum hop
   eccentricity), so chains hang from their middle and limbs from the body; ties go to the joint nearest the
   centroid of the joints, then to the lowest index. `root=` (a keypoint index) overrides it. Bones point away
   from the root.

Joints keep the order of the merged keypoints (joint j holds keypoints whose lowest index is smallest among
the groups before it), so `keypoint_to_joint` is monotone for unmerged keypoints. Names: the root joint is
"root", others "joint_07"; the bone ending at joint 7 is "bone_07" — stable, unique and valid in Blender.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import pdist, squareform

from .errors import KeyDiffError
from .rig import Rig

DEFAULT_MERGE_FRACTION = 0.02
DEFAULT_DISTANCE_WEIGHT = 1.0
WEIGHT_FLOOR = 1e-3        # ε: a zero-weight edge costs −log ε ≈ 6.9 typical bone lengths extra


@dataclass(frozen=True)
class SkeletonResult:
    rig: Rig
    keypoint_to_joint: np.ndarray   # [K] int64, the joint each raw keypoint was merged into
    joint_edge_weights: np.ndarray  # [J, J] float64 predicted weights after merging (symmetric, zero diagonal)
    costs: np.ndarray               # [J, J] float64 the MST edge costs (module docstring)
    bone_confidence: np.ndarray     # [B] float64 normalised predicted weight w̃ ∈ [0, 1] of each bone's edge
    distance_scale: float           # d_scale: mean bone length of the distance-only MST


def build_skeleton(
    keypoints: np.ndarray,
    edge_weights: np.ndarray,
    *,
    merge_fraction: float = DEFAULT_MERGE_FRACTION,
    distance_weight: float = DEFAULT_DISTANCE_WEIGHT,
    root: int | None = None,
    object_size: float | None = None,
) -> SkeletonResult:
    """Build the Rig from keypoints [K, 3] and edge weights [K, K] (see the module docstring for the rules).

    root: index of a keypoint whose joint becomes the root (default: the tree's centre).
    object_size: the length merge_fraction is relative to (default: the keypoints' bounding-box diagonal).
    """
    keypoints, weights = _validate(keypoints, edge_weights)
    _check_setting("merge_fraction", merge_fraction)
    _check_setting("distance_weight", distance_weight)
    if root is not None and not (isinstance(root, (int, np.integer)) and 0 <= root < len(keypoints)):
        raise KeyDiffError("invalid_argument", f"root must be a keypoint index in [0, {len(keypoints) - 1}], got {root!r}")

    size = _object_size(keypoints, object_size)
    keypoint_to_joint = _merge_groups(keypoints, merge_fraction * size)
    num_joints = int(keypoint_to_joint.max()) + 1
    if num_joints < 2:
        raise KeyDiffError(
            "invalid_keypoints",
            f"all {len(keypoints)} keypoints lie within {merge_fraction} x object size ({merge_fraction * size:.4g}) "
            "of one another: at least 2 distinct joints are needed",
        )
    joints = _group_means(keypoints, keypoint_to_joint, num_joints)           # [J, 3]
    joint_weights = _group_max(weights, keypoint_to_joint, num_joints)        # [J, J]

    distances = squareform(pdist(joints))                                     # [J, J]
    distance_scale = float(np.mean(_mst_edge_lengths(distances)))
    normalised = _normalise(joint_weights)                                    # [J, J] in [0, 1]
    costs = distance_weight * distances / distance_scale - np.log(normalised + WEIGHT_FLOOR)
    np.fill_diagonal(costs, 0.0)
    tree = _spanning_tree(costs)

    root_joint = int(keypoint_to_joint[root]) if root is not None else _tree_centre(tree, joints)
    parents = _parents_from_root(tree, root_joint, num_joints)
    rig = Rig(joints, parents, *_names(num_joints, root_joint))
    bone_confidence = normalised[rig.bone_head_joint, rig.bone_tail_joint]
    return SkeletonResult(rig, keypoint_to_joint, joint_weights, costs, bone_confidence, distance_scale)


# --- merging ----------------------------------------------------------------------------------------------
def _merge_groups(keypoints: np.ndarray, threshold: float) -> np.ndarray:
    """[K] joint index per keypoint: single-linkage groups of keypoints within `threshold`, in first-seen order."""
    close = squareform(pdist(keypoints) <= threshold)                       # [K, K] bool, zero diagonal
    _, labels = connected_components(coo_matrix(close), directed=False)
    first_member = np.full(labels.max() + 1, len(keypoints))
    np.minimum.at(first_member, labels, np.arange(len(keypoints)))
    rank = np.empty_like(first_member)
    rank[np.argsort(first_member)] = np.arange(len(first_member))
    return rank[labels].astype(np.int64)


def _group_means(keypoints: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    sums = np.zeros((num_groups, 3))
    np.add.at(sums, groups, keypoints)
    return sums / np.bincount(groups, minlength=num_groups)[:, None]


def _group_max(weights: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    merged = np.zeros((num_groups, num_groups))
    np.maximum.at(merged, (groups[:, None], groups[None, :]), weights)
    np.fill_diagonal(merged, 0.0)
    return merged


def _normalise(weights: np.ndarray) -> np.ndarray:
    """w / max(w); all-zero weights carry no information, so they become uniform (pure distance MST)."""
    top = weights.max()
    return weights / top if top > 0 else np.ones_like(weights)


# --- tree -------------------------------------------------------------------------------------------------
def _spanning_tree(costs: np.ndarray) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(len(costs)))
    rows, cols = np.triu_indices(len(costs), k=1)
    graph.add_weighted_edges_from(zip(rows.tolist(), cols.tolist(), costs[rows, cols].tolist()))
    return nx.minimum_spanning_tree(graph, algorithm="kruskal")


def _mst_edge_lengths(distances: np.ndarray) -> np.ndarray:
    tree = _spanning_tree(distances)
    return np.array([data["weight"] for _, _, data in tree.edges(data=True)])


def _tree_centre(tree: nx.Graph, joints: np.ndarray) -> int:
    eccentricity = nx.eccentricity(tree)                                    # hops to the farthest joint
    best = min(eccentricity.values())
    candidates = sorted(node for node, ecc in eccentricity.items() if ecc == best)
    to_centroid = np.linalg.norm(joints[candidates] - joints.mean(axis=0), axis=1)
    return int(candidates[int(np.argmin(to_centroid))])                    # argmin keeps the lowest index on ties


def _parents_from_root(tree: nx.Graph, root: int, num_joints: int) -> np.ndarray:
    parents = np.full(num_joints, -1, dtype=np.int64)
    for parent, child in nx.bfs_edges(tree, root):
        parents[child] = parent
    return parents


def _names(num_joints: int, root: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    width = max(2, len(str(num_joints - 1)))
    joint_names = tuple("root" if j == root else f"joint_{j:0{width}d}" for j in range(num_joints))
    bone_names = tuple(f"bone_{j:0{width}d}" for j in range(num_joints) if j != root)
    return joint_names, bone_names


# --- input checks -----------------------------------------------------------------------------------------
def _validate(keypoints: np.ndarray, edge_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return float64 keypoints [K, 3] and symmetric weights [K, K] (max of w and wᵀ), or raise invalid_keypoints."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise KeyDiffError("invalid_keypoints", f"keypoints must have shape (K, 3), got {keypoints.shape}")
    num = keypoints.shape[0]
    if num < 2:
        raise KeyDiffError("invalid_keypoints", f"a skeleton needs at least 2 keypoints, got {num}")
    if not np.isfinite(keypoints).all():
        bad = np.flatnonzero(~np.isfinite(keypoints).all(axis=1))
        raise KeyDiffError("invalid_keypoints", f"keypoints {bad.tolist()[:10]} have NaN or infinite coordinates")
    weights = np.asarray(edge_weights, dtype=np.float64)
    if weights.shape != (num, num):
        raise KeyDiffError("invalid_keypoints", f"edge_weights must have shape ({num}, {num}) for {num} keypoints, got {weights.shape}")
    if not np.isfinite(weights).all():
        raise KeyDiffError("invalid_keypoints", f"edge_weights contain {int((~np.isfinite(weights)).sum())} NaN or infinite values")
    if (weights < 0).any():
        raise KeyDiffError("invalid_keypoints", f"edge_weights must be >= 0 (softplus outputs), got a minimum of {weights.min():.4g}")
    return keypoints, np.maximum(weights, weights.T)


def _check_setting(name: str, value: float) -> None:
    if not np.isfinite(value) or value < 0:
        raise KeyDiffError("invalid_argument", f"{name} must be a finite number >= 0, got {value}")


def _object_size(keypoints: np.ndarray, object_size: float | None) -> float:
    if object_size is None:
        size = float(np.linalg.norm(keypoints.max(axis=0) - keypoints.min(axis=0)))
        if size <= 0:
            raise KeyDiffError("invalid_keypoints", f"all {len(keypoints)} keypoints coincide: at least 2 distinct joints are needed")
        return size
    if not np.isfinite(object_size) or object_size <= 0:
        raise KeyDiffError("invalid_argument", f"object_size must be a positive length, got {object_size}")
    return float(object_size)
