"""Mirror-symmetric rigs for mirror-symmetric characters, with Blender's `.L` / `.R` names.

Why: Blender's X-Axis Mirror editing, "Paste Pose Flipped" and symmetric weight painting find a bone's partner by
its name (`thigh.L` <-> `thigh.R`) and expect the two at mirrored places; game engines' humanoid retargeters look
for sided names too. Curve-skeleton joints of two legs are only roughly mirrored (voxel noise, different
spacing along each branch), so without this step a symmetric character gets a lopsided rig with plain names.

Three steps, all in rig-mesh's canonical frame (Z up, centred on the bounding box, no rotation):

1. `detect_mirror_plane`: only the two vertical planes through the bounding-box centre are tried (x = c and
   y = c: an artist models a character facing an axis). Each is scored by how far the mirror image of the
   surface lies from the surface: the mean distance from reflected area-weighted samples to a second,
   independent sample set, minus the same mean without the reflection (the sampling's own spacing), over the
   bounding-box diagonal. A plane is accepted when that excess is under `tolerance` (x before y when both are:
   Blender mirrors across X); else no plane and nothing downstream changes. On the 10 artist characters of
   benchmarks/rigging_geometry.py the excess is <= 0.0003 on their own plane (9 x, the wasp y) and >= 0.006 on
   the other one (the knight's front and back); the tolerance, 0.004, sits between. Frosting meshes rebuilt
   from orbit renders of the fox, knight and spider score 0.002-0.003 on x and pass; a reconstruction from
   SV3D views of a photo is expected to score higher and not to.
2. `symmetrise_keypoints`: keypoints within `snap` of the plane move onto it; the others pair up with the
   nearest reflected keypoint on the other side (closest pairs first, each keypoint once, within `pair`), and
   each pair is replaced by the exact mirror images of its mean. A keypoint left without a partner gets a
   mirror copy when its image lands among the other side's keypoints (one leg got a joint more than the other);
   one whose image lands nowhere near (a prop held in one hand) stays as it is. Edge weights are averaged over
   mirror-image edges, so the MST sees equal costs on both sides.
3. After the MST: when it broke the symmetry (a joint whose parent is not the mirror of its mirror's parent -
   equal costs tie-break one way, the middle is reached through one side, or a side joint became the root),
   `mirror_tree` rebuilds the tree from the centre and left joints, copies it to the right and hangs joints
   with no mirror from it. On the 10 characters the raw MST of the curve-skeleton keypoints was not
   mirror-consistent on 4 (1-4 joints each); after this step none is. `mirror_rig` then names paired joints
   `joint_07.L` / `joint_07.R` and their bones `bone_07.L` / `bone_07.R` (one base name, so Blender's name
   flipping finds the partner); joints on the plane and unpaired joints keep their plain names, as do "root"
   and the floor root's joints.

Measured (benchmarks/results/rigging_geometry.json against rigging_geometry_no_symmetry.json, 10 characters):
every character is found symmetric. Curve-skeleton (`geometry`) rigs: mean CD-J2J 0.1063 with and without this
step (the mirror copies raise the predicted->true half by 0.001 and lower the other by the same), every joint
paired or on the plane, every tree mirror-consistent, pairs mirror images to 1e-16. Network keypoints pair less
well (a few stay unpaired and keep plain names) but score better: `snapped` CD-J2J 0.160 -> 0.155 (B2B 0.145 ->
0.136), `network` 0.201 -> 0.195 (B2B 0.177 -> 0.168); their trees are mirror-consistent but for one network
rig with no keypoint on the plane.

Side convention. Blender characters face -Y, so on the x-plane +X is the character's left: `.L`. On the
y-plane (a character facing +X or -X; which one is not known from the shape) the +Y side is called `.L`, as for
a character facing +X. Blender's mirror tools mirror across the armature's local X only, so on the y-plane the
names pair up but X-Axis Mirror does not apply. The plane passes through the mesh's bounding-box centre, or
exactly through the file's origin when that lies on it (every character here: the rig then mirrors across the
object's own X = 0, where Blender mirrors); the bundle's settings record it in object coordinates
(`settings["mirror"]`: plane, offset, excess; None when no plane was found).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.spatial import cKDTree

from .errors import KeyDiffError
from .rig import Rig
from .skeleton import DEFAULT_MERGE_FRACTION, SkeletonResult

AXES = ("x", "y")                       # the candidate planes x = c and y = c
DEFAULT_PLANE_TOLERANCE = 0.004         # accept a plane when the surface's mirror excess is under this x diagonal
DEFAULT_SNAP = DEFAULT_MERGE_FRACTION / 2  # keypoints this close to the plane (x diagonal) land on it: a mirror
                                           # pair closer than that would be merged by build_skeleton anyway
DEFAULT_PAIR = 0.04                     # a keypoint pairs with a reflected keypoint up to this x diagonal away
DEFAULT_COMPLETE = 0.1                  # an unpaired keypoint is mirrored when its image is this close to the body's
                                        # keypoints on the other side (x diagonal; joint spacing is ~0.05 of it)
SURFACE_SAMPLES = 10_000                # per sample set (two sets): ~40 ms; 20,000 moves the excess by < 0.001
EXACT = 1e-9                            # joints are "on the plane" / "mirror images" to this x diagonal
ORIGIN_ON_PLANE = 1e-6                  # the file's origin lies on the mirror plane up to this x diagonal
LEFT, CENTRE, RIGHT = 1, 0, -1
SIDE_SUFFIX = {LEFT: ".L", RIGHT: ".R"}
_PLAIN_NAME = re.compile(r"^(joint|bone)_(\d+)$")


@dataclass(frozen=True)
class MirrorPlane:
    axis: int          # 0: the plane x = offset, 1: the plane y = offset
    offset: float      # where the plane cuts its axis (frame of the points it was found on)
    excess: float      # the surface's mirror excess (module docstring), x bounding-box diagonal

    @property
    def name(self) -> str:
        return AXES[self.axis]

    def reflect(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] points mirrored across the plane."""
        mirrored = np.array(points, dtype=np.float64, copy=True)
        mirrored[..., self.axis] = 2.0 * self.offset - mirrored[..., self.axis]
        return mirrored

    def side_of(self, points: np.ndarray, tolerance: float) -> np.ndarray:
        """[N] int8: LEFT (+axis), RIGHT (-axis) or CENTRE (within `tolerance` of the plane)."""
        offset = np.asarray(points, np.float64)[..., self.axis] - self.offset
        return np.where(np.abs(offset) <= tolerance, CENTRE, np.sign(offset)).astype(np.int8)

    def transformed(self, matrix: np.ndarray) -> "MirrorPlane":
        """The same plane under a 4x4 similarity without rotation (scale and translation), such as the
        canonical transform's inverse."""
        return MirrorPlane(self.axis, float(matrix[self.axis, self.axis] * self.offset + matrix[self.axis, 3]),
                           self.excess)

    def to_dict(self) -> dict:
        return {"plane": self.name, "offset": round(self.offset, 12), "excess": round(self.excess, 6)}


@dataclass(frozen=True)
class KeypointMirror:
    plane: MirrorPlane
    side: np.ndarray       # [K] int8 LEFT / CENTRE / RIGHT of each symmetrised keypoint
    partner: np.ndarray    # [K] int64 index of the mirror keypoint, -1 on the plane and for unpaired keypoints


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


# --- 1. detection -----------------------------------------------------------------------------------------
def plane_excess(vertices: np.ndarray, faces: np.ndarray, *, samples: int = SURFACE_SAMPLES,
                 seed: int = 0) -> np.ndarray:
    """[2] the mirror excess (module docstring) of the planes x = c and y = c through the bounding-box centre."""
    vertices, faces = _check_mesh(vertices, faces)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    centre, diagonal = (lo + hi) / 2.0, float(np.linalg.norm(hi - lo))
    rng = np.random.default_rng(seed)
    first, second = _surface_samples(vertices, faces, samples, rng), _surface_samples(vertices, faces, samples, rng)
    tree = cKDTree(second)
    spacing = float(tree.query(first)[0].mean())                              # sampling noise, no reflection
    excess = []
    for axis in range(len(AXES)):
        mirrored = MirrorPlane(axis, float(centre[axis]), 0.0).reflect(first)
        excess.append(max(float(tree.query(mirrored)[0].mean()) - spacing, 0.0) / diagonal)
    return np.asarray(excess)


def detect_mirror_plane(vertices: np.ndarray, faces: np.ndarray,
                        tolerance: float = DEFAULT_PLANE_TOLERANCE) -> MirrorPlane | None:
    """The vertical mirror plane of a Z-up mesh (vertices [V, 3], faces [F, 3]), or None when neither x = c nor
    y = c (c: the bounding-box centre) mirrors the surface onto itself within `tolerance` x its diagonal.

    When both do (a table, a ball, a spider with legs all round) x wins: Blender's mirror tools mirror across X.
    """
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise KeyDiffError("invalid_argument", f"symmetry tolerance must be a finite number >= 0, got {tolerance}")
    excess = plane_excess(vertices, faces)
    passing = np.flatnonzero(excess <= tolerance)
    if len(passing) == 0:
        return None
    axis = int(passing[0])              # x first: Blender mirrors across X, and a shape with both planes has x
    vertices = np.asarray(vertices, np.float64)
    offset = float((vertices[:, axis].min() + vertices[:, axis].max()) / 2.0)
    return MirrorPlane(axis, offset, float(excess[axis]))


def _surface_samples(vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """[count, 3] points spread over the surface by area (tessellation-independent, unlike the vertices)."""
    corners = vertices[faces]                                                 # [F, 3, 3]
    area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    if not area.sum() > 0:
        raise KeyDiffError("invalid_mesh", f"the mesh's {len(faces)} faces have no area: no surface to mirror")
    chosen = rng.choice(len(faces), count, p=area / area.sum())
    u, v = rng.random((2, count))
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    tri = corners[chosen]                                                     # [count, 3, 3]
    return tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + v[:, None] * (tri[:, 2] - tri[:, 0])


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 3 or not np.isfinite(vertices).all():
        raise KeyDiffError("invalid_mesh", f"vertices must be finite with shape (V >= 3, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise KeyDiffError("invalid_mesh", f"faces must have shape (F > 0, 3), got {faces.shape}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise KeyDiffError("invalid_mesh", f"face indices must lie in [0, {len(vertices) - 1}]")
    return vertices, faces.astype(np.int64)


# --- 2. keypoints -----------------------------------------------------------------------------------------
def symmetrise_keypoints(
    keypoints: np.ndarray, adjacency: np.ndarray, plane: MirrorPlane, object_size: float,
    *, snap: float = DEFAULT_SNAP, pair: float = DEFAULT_PAIR, complete: float = DEFAULT_COMPLETE,
) -> tuple[np.ndarray, np.ndarray, KeypointMirror]:
    """Keypoints [K, 3] and adjacency [K, K] made mirror-symmetric across `plane` where they nearly are.

    snap, pair: fractions of `object_size` (the bounding-box diagonal in rig-mesh) - how close to the plane a
    keypoint lands on it, and how far a reflected keypoint may be from its partner.
    """
    keypoints = np.asarray(keypoints, np.float64)
    adjacency = np.asarray(adjacency, np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 3 or not np.isfinite(keypoints).all():
        raise KeyDiffError("invalid_keypoints", f"keypoints must be finite with shape (K, 3), got {keypoints.shape}")
    num = len(keypoints)
    if adjacency.shape != (num, num):
        raise KeyDiffError("invalid_keypoints", f"adjacency must have shape ({num}, {num}), got {adjacency.shape}")
    if not (np.isfinite(object_size) and object_size > 0):
        raise KeyDiffError("invalid_argument", f"object_size must be a positive length, got {object_size}")
    for name, value in (("snap", snap), ("pair", pair), ("complete", complete)):
        if not (np.isfinite(value) and value >= 0):
            raise KeyDiffError("invalid_argument", f"symmetry {name} must be a finite number >= 0, got {value}")

    side = plane.side_of(keypoints, snap * object_size)                       # [K]
    partner = _pair_up(keypoints, side, plane, pair * object_size)             # [K]
    keypoints, adjacency, side, partner = _complete(keypoints, adjacency, side, partner, plane,
                                                    complete * object_size)
    num = len(keypoints)
    symmetric = keypoints.copy()
    symmetric[side == CENTRE, plane.axis] = plane.offset
    left = np.flatnonzero((partner >= 0) & (side == LEFT))
    right = partner[left]
    mean_left = (keypoints[left] + plane.reflect(keypoints[right])) / 2.0     # [P, 3]
    symmetric[left] = mean_left
    symmetric[right] = plane.reflect(mean_left)

    mirror = np.where(partner >= 0, partner, np.arange(num))                   # [K'] index of the mirror keypoint
    weights = np.maximum(adjacency, adjacency.T)
    weights = (weights + weights[np.ix_(mirror, mirror)]) / 2.0               # mirror-image edges: one weight
    return symmetric, weights, KeypointMirror(plane, side, partner)


def _complete(keypoints: np.ndarray, adjacency: np.ndarray, side: np.ndarray, partner: np.ndarray,
              plane: MirrorPlane, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unpaired off-plane keypoints whose mirror image falls within `radius` of a keypoint on the other side (a
    limb is there: one leg got a joint more than the other) gain a mirror copy, appended after the K originals;
    a copy's links are its original's links, mirrored. Returns keypoints [K', 3], adjacency [K', K'], side [K'],
    partner [K']."""
    lonely = np.flatnonzero((side != CENTRE) & (partner < 0))
    if len(lonely) == 0:
        return keypoints, adjacency, side, partner
    images = plane.reflect(keypoints[lonely])                                 # [U, 3]
    gaps = np.linalg.norm(images[:, None, :] - keypoints[None, :, :], axis=2)  # [U, K]
    opposite = side[None, :] == -side[lonely][:, None]
    lonely = lonely[(np.where(opposite, gaps, np.inf).min(axis=1) <= radius)]
    if len(lonely) == 0:
        return keypoints, adjacency, side, partner
    num, extra = len(keypoints), len(lonely)
    copies = num + np.arange(extra)                                          # [U] indices of the new keypoints
    mirror = np.where(partner >= 0, partner, np.arange(num))                   # [K] mirror index (self: unpaired)
    mirror[lonely] = copies
    grown = np.zeros((num + extra, num + extra))                              # [K', K']
    grown[:num, :num] = adjacency
    grown[np.ix_(copies, mirror)] = adjacency[lonely]                         # u~k  =>  copy(u) ~ mirror(k)
    grown = np.maximum(grown, grown.T)
    partner = np.concatenate([partner, lonely])
    partner[lonely] = copies
    side = np.concatenate([side, -side[lonely]]).astype(np.int8)
    return np.vstack([keypoints, plane.reflect(keypoints[lonely])]), grown, side, partner


def _pair_up(keypoints: np.ndarray, side: np.ndarray, plane: MirrorPlane, radius: float) -> np.ndarray:
    """[K] partner index or -1: left and right keypoints matched closest-first (reflected distance <= radius),
    each at most once; a mutual nearest pair is always matched, and the rest among what remains."""
    partner = np.full(len(keypoints), -1, np.int64)
    left, right = np.flatnonzero(side == LEFT), np.flatnonzero(side == RIGHT)
    if len(left) == 0 or len(right) == 0:
        return partner
    gaps = np.linalg.norm(plane.reflect(keypoints[left])[:, None, :] - keypoints[right][None, :, :], axis=2)
    rows, cols = np.nonzero(gaps <= radius)                                  # candidate pairs [C]
    order = np.argsort(gaps[rows, cols], kind="stable")
    for row, col in zip(rows[order].tolist(), cols[order].tolist()):         # C is small: a few per keypoint
        a, b = left[row], right[col]
        if partner[a] < 0 and partner[b] < 0:
            partner[a], partner[b] = b, a
    return partner


# --- 3. the rig -------------------------------------------------------------------------------------------
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


# --- the pipeline's two calls -----------------------------------------------------------------------------
def mirror_keypoints(vertices: np.ndarray, faces: np.ndarray, keypoints: np.ndarray, adjacency: np.ndarray,
                     origin: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, MirrorPlane | None]:
    """Keypoints [K', 3] and adjacency [K', K'] symmetrised across the mesh's mirror plane, and that plane; the
    inputs unchanged and None when the mesh (canonical frame, Z up) is not mirror-symmetric.

    origin: [3] the file's origin in the same frame. When the plane passes through it (to ORIGIN_ON_PLANE x the
    diagonal: a model built with a mirror modifier) the plane is put exactly there, so the rig mirrors across the
    object's own X = 0, the plane Blender's mirror tools use, to the last bit rather than to rounding error.
    """
    plane = detect_mirror_plane(vertices, faces)
    if plane is None:
        return np.asarray(keypoints, np.float64), np.asarray(adjacency, np.float64), None
    vertices = np.asarray(vertices, np.float64)
    diagonal = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    if origin is not None and abs(float(origin[plane.axis]) - plane.offset) <= ORIGIN_ON_PLANE * diagonal:
        plane = MirrorPlane(plane.axis, float(origin[plane.axis]), plane.excess)
    keypoints, adjacency, _ = symmetrise_keypoints(keypoints, adjacency, plane, diagonal)
    return keypoints, adjacency, plane


def mirror_skeleton(skeleton: SkeletonResult, plane: MirrorPlane) -> SkeletonResult:
    """The MST skeleton of symmetrised keypoints with a mirror-consistent tree (when one exists) and side names."""
    skeleton = mirror_tree(skeleton, plane)
    return SkeletonResult(mirror_rig(skeleton.rig, plane), skeleton.keypoint_to_joint, skeleton.joint_edge_weights,
                          skeleton.costs, skeleton.bone_confidence, skeleton.distance_scale)


def onto_plane(point: np.ndarray, plane: MirrorPlane, tolerance: float) -> np.ndarray:
    """[3] `point` moved onto the plane when it is within `tolerance` of it (the floor root of a symmetric
    character, so the root bone mirrors onto itself), else unchanged."""
    point = np.array(point, dtype=np.float64, copy=True)
    if abs(point[plane.axis] - plane.offset) <= tolerance:
        point[plane.axis] = plane.offset
    return point
