"""A mirror-consistent skeleton tree with Blender's .L/.R names (step 3 of backend/symmetry), and the report
that checks one."""

from __future__ import annotations

import re
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.spatial import cKDTree

from ..rig import Rig
from ..skeleton import SkeletonResult
from .plane import CENTRE, LEFT, RIGHT, MirrorPlane

EXACT = 1e-9                            # joints are "on the plane" / "mirror images" to this x diagonal
SIDE_SUFFIX = {LEFT: ".L", RIGHT: ".R"}
_PLAIN_NAME = re.compile(r"^(joint|bone)_(\d+)$")


@dataclass(frozen=True)
class MirrorReport:
    """How mirror-consistent a rig is; what benchmarks and tests check."""
    pairs: int                 # joint pairs that are mirror images
    named_pairs: int           # joint pairs named `X.L` / `X.R`
    centre: int                # joints on the plane
    unpaired: int              # joints off the plane with no mirror joint
    inconsistent: int          # joints whose parent is not the mirror of their mirror's parent (see _inconsistent)
    max_mirror_error: float    # max |reflect(X.L) - X.R| over named pairs, in the rig's units

    def to_dict(self) -> dict:
        return {"pairs": self.pairs, "named_pairs": self.named_pairs, "centre": self.centre, "unpaired": self.unpaired,
                "inconsistent": self.inconsistent, "max_mirror_error": self.max_mirror_error}


def joint_mirror(joints: np.ndarray, plane: MirrorPlane, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Side [J] (int8) and partner [J] (int64, -1 = none) of joints that are exact mirror images / on the plane
    to `tolerance` (an absolute length)."""
    joints = np.asarray(joints, np.float64)
    side = plane.side_of(joints, tolerance)
    distance, nearest = cKDTree(joints).query(plane.reflect(joints))
    paired = (side != CENTRE) & (distance <= tolerance) & (side[nearest] == -side)
    paired &= paired[nearest] & (nearest[nearest] == np.arange(len(joints)))
    return side, np.where(paired, nearest, -1).astype(np.int64)


def mirror_report(rig: Rig, plane: MirrorPlane, tolerance: float | None = None) -> MirrorReport:
    """Pairs, centre joints and tree consistency of `rig` across `plane`, found geometrically to `tolerance`
    (default: EXACT x the joints' diagonal); the mirror error is measured over the pairs Blender sees, the
    joints whose names differ only in `.L` / `.R`."""
    tolerance = _exact(rig.joints) if tolerance is None else tolerance
    side, partner = joint_mirror(rig.joints, plane, tolerance)
    named = named_pairs(rig.names)                                           # [P, 2]
    error = np.linalg.norm(plane.reflect(rig.joints[named[:, 0]]) - rig.joints[named[:, 1]], axis=1)
    return MirrorReport(
        pairs=int((partner >= 0).sum()) // 2, named_pairs=len(named), centre=int((side == CENTRE).sum()),
        unpaired=int(((side != CENTRE) & (partner < 0)).sum()),
        inconsistent=int(_inconsistent(rig.parents, side, partner).sum()),
        max_mirror_error=float(error.max()) if len(error) else 0.0)


def named_pairs(names: tuple[str, ...]) -> np.ndarray:
    """[P, 2] indices (the `.L` name, the `.R` name) of names that differ only in Blender's side suffix."""
    index = {name: i for i, name in enumerate(names)}
    pairs = [(i, index[name[:-2] + ".R"]) for i, name in enumerate(names)
             if name.endswith(".L") and name[:-2] + ".R" in index]
    return np.asarray(pairs, np.int64).reshape(-1, 2)


def _inconsistent(parents: np.ndarray, side: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """[J] bool: joints that break the tree's mirror symmetry - a paired joint whose parent is not the mirror
    of its partner's parent, or a joint on the plane hanging from a joint off it. (A centre joint is its own
    mirror; an unpaired off-plane joint has none, so a pair hanging from one is inconsistent.)"""
    index = np.arange(len(parents))
    mirror = np.where(partner >= 0, partner, np.where(side == CENTRE, index, -2))   # [J] -2: no mirror
    has_mirror = mirror >= 0
    mirror_of_parent = np.where(parents >= 0, mirror[np.maximum(parents, 0)], -1)
    parent_of_mirror = parents[np.maximum(mirror, 0)]
    return has_mirror & (parents >= 0) & (mirror_of_parent != parent_of_mirror)


def mirror_tree(skeleton: SkeletonResult, plane: MirrorPlane) -> SkeletonResult:
    """The skeleton with a mirror-consistent tree when the MST tie-broke the two sides differently.

    A spanning tree is built again on the centre and left joints only (the same costs; `_half_tree`), every left
    bone is copied to the right, and joints with no mirror hang from that tree by their cheapest edges. The root
    stays the same joint when it is on the plane; else (the lopsided tree's centre was a side joint) the new
    tree's centre among the joints on the plane takes its place and its name. With no joint on the plane the
    skeleton is returned unchanged.
    """
    rig = skeleton.rig
    side, partner = joint_mirror(rig.joints, plane, _exact(rig.joints))
    if not _inconsistent(rig.parents, side, partner).any():
        return skeleton
    lonely = (side != CENTRE) & (partner < 0)                                 # [J] joints with no mirror
    if not (side == CENTRE).any():
        return skeleton                         # nothing on the plane to hang both sides from
    core_side = np.where(lonely, RIGHT, side)                                 # leave them out of the half
    half_edges = _half_tree(skeleton.costs, core_side, exclude=lonely)
    mirror = np.where(partner >= 0, partner, np.arange(rig.num_joints))
    tree = nx.Graph()
    tree.add_nodes_from(range(rig.num_joints))
    tree.add_edges_from(half_edges)
    tree.add_edges_from((int(mirror[u]), int(mirror[v])) for u, v in half_edges)
    _attach(tree, skeleton.costs, lonely)
    if tree.number_of_edges() != rig.num_joints - 1 or not nx.is_tree(tree):
        return skeleton
    root = rig.root if side[rig.root] == CENTRE else _centre_root(tree, rig.joints, side == CENTRE)
    parents = np.full(rig.num_joints, -1, np.int64)
    for parent, child in nx.bfs_edges(tree, root):
        parents[child] = parent
    names, bone_names = _moved_root(rig, root)
    rebuilt = Rig(rig.joints, parents, names, bone_names, rig.bone_deforms)
    weights = skeleton.joint_edge_weights
    normalised = weights / weights.max() if weights.max() > 0 else np.ones_like(weights)
    confidence = normalised[rebuilt.bone_head_joint, rebuilt.bone_tail_joint]
    return SkeletonResult(rebuilt, skeleton.keypoint_to_joint, weights, skeleton.costs, confidence,
                          skeleton.distance_scale)


def _centre_root(tree: nx.Graph, joints: np.ndarray, allowed: np.ndarray) -> int:
    """The allowed joint (`allowed` [J] bool) fewest bones from its farthest joint, ties to the one nearest the
    joints' centroid - build_skeleton's root rule, kept on the plane."""
    eccentricity = nx.eccentricity(tree)
    candidates = np.flatnonzero(allowed)
    hops = np.array([eccentricity[int(j)] for j in candidates])
    candidates = candidates[hops == hops.min()]
    return int(candidates[np.argmin(np.linalg.norm(joints[candidates] - joints.mean(axis=0), axis=1))])


def _moved_root(rig: Rig, root: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Joint and bone names after the root moves to joint `root`: it takes the name "root", the old root gets
    the plain name its index gives (`joint_NN`, digits as wide as the others'), bones are named after their
    tail joints (`bone_NN`), as build_skeleton names them."""
    if root == rig.root:
        return rig.names, rig.bone_names
    width = max((len(m.group(2)) for m in map(_PLAIN_NAME.match, rig.names) if m), default=2)
    names = list(rig.names)
    names[rig.root], names[root] = f"joint_{rig.root:0{width}d}", rig.names[rig.root]
    bone_names = tuple(f"bone_{j:0{width}d}" for j in range(rig.num_joints) if j != root)
    return tuple(names), bone_names


def _attach(tree: nx.Graph, costs: np.ndarray, lonely: np.ndarray) -> None:
    """Hang the joints with no mirror (`lonely` [J] bool) on the mirror-consistent `tree` of the others, cheapest
    edges first (Kruskal's rule over the edges that touch one of them), so no paired joint hangs from them."""
    if not lonely.any():
        return
    component = {j: 0 for j in np.flatnonzero(~lonely).tolist()}              # the consistent tree is one piece
    component.update({j: j + 1 for j in np.flatnonzero(lonely).tolist()})
    rows, cols = np.triu_indices(len(costs), k=1)
    touching = lonely[rows] | lonely[cols]
    rows, cols = rows[touching], cols[touching]
    for u, v in zip(*(x[np.argsort(costs[rows, cols], kind="stable")].tolist() for x in (rows, cols))):
        cu, cv = component[u], component[v]
        if cu == cv:
            continue
        tree.add_edge(u, v)
        for j, c in component.items():
            if c == cv:
                component[j] = cu


def _half_tree(costs: np.ndarray, side: np.ndarray, exclude: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Edges of a cheap spanning tree of the centre and left joints in which the centre joints are connected
    among themselves, so that copying the left bones to the right gives a tree.

    Kruskal's rule with one more: an edge may join two pieces that both hold centre joints only when both its
    ends are centre joints. (A plain MST of the half can join the middle through one side - a spider's body
    joint reached via a left leg's root - and its mirror copy then closes a loop.) Each merge keeps every
    piece's centre joints connected, and the graph is complete, so the result spans the half.
    """
    keep = side != RIGHT if exclude is None else (side != RIGHT) & ~exclude
    half = np.flatnonzero(keep)                                               # [H] centre + left joints
    rows, cols = np.triu_indices(len(half), k=1)
    a, b = half[rows], half[cols]
    order = np.argsort(costs[a, b], kind="stable")
    piece = {int(j): int(j) for j in half}
    has_centre = {int(j): bool(side[j] == CENTRE) for j in half}

    def find(j: int) -> int:
        while piece[j] != j:
            piece[j] = piece[piece[j]]
            j = piece[j]
        return j

    edges: list[tuple[int, int]] = []
    for u, v in zip(a[order].tolist(), b[order].tolist()):      # H is ~100 joints: a few thousand edges
        pu, pv = find(u), find(v)
        if pu == pv:
            continue
        if has_centre[pu] and has_centre[pv] and not (side[u] == CENTRE and side[v] == CENTRE):
            continue
        piece[pu] = pv
        has_centre[pv] = has_centre[pu] or has_centre[pv]
        edges.append((u, v))
        if len(edges) == len(half) - 1:
            break
    return edges


def mirror_rig(rig: Rig, plane: MirrorPlane, tolerance: float | None = None) -> Rig:
    """`rig` with Blender side names on joints that are exact mirror images across `plane`: a pair shares the
    number of its lower joint (`joint_07.L` / `joint_07.R`), its bones likewise (`bone_07.L` / `bone_07.R`).
    Only the skeleton builder's plain names (`joint_NN`, `bone_NN`) change: "root", "ground" and others stay,
    and a pair with such a name keeps plain names on both sides."""
    tolerance = _exact(rig.joints) if tolerance is None else tolerance
    side, partner = joint_mirror(rig.joints, plane, tolerance)
    joint_names, bone_names = list(rig.names), list(rig.bone_names)
    bone_of_tail = {int(t): b for b, t in enumerate(rig.bone_tail_joint)}
    for j in np.flatnonzero(partner >= 0).tolist():
        own, other = _PLAIN_NAME.match(rig.names[j]), _PLAIN_NAME.match(rig.names[partner[j]])
        if own is None or other is None or own.group(1) != "joint" or other.group(1) != "joint":
            continue
        number = own.group(2) if j < partner[j] else other.group(2)
        suffix = SIDE_SUFFIX[int(side[j])]
        joint_names[j] = f"joint_{number}{suffix}"
        bone = bone_of_tail.get(j)
        if bone is not None and _PLAIN_NAME.match(rig.bone_names[bone]):
            bone_names[bone] = f"bone_{number}{suffix}"
    if len(set(joint_names)) != len(joint_names) or len(set(bone_names)) != len(bone_names):
        return rig                                                          # a clash: keep the plain names
    return Rig(rig.joints, rig.parents, tuple(joint_names), tuple(bone_names), rig.bone_deforms)


def _exact(joints: np.ndarray) -> float:
    return EXACT * max(float(np.linalg.norm(np.ptp(joints, axis=0))), 1e-12)


