"""The one rig type (DESIGN.md "One type for a rig") and its sparse skin weights.

A `Rig` is a tree of joints. Every non-root joint ends exactly one bone: bone b runs from the joint's parent
(head) to the joint (tail); its parent bone is the bone that ends at the head, or none when the head is the
root. Bones are numbered in the order of their tail joints, so `bone_tail_joint[b]` is increasing.

Artist rigs (glTF, Blender) attach child bones anywhere, not only at their parent's tail. Such a skeleton is
represented exactly by adding *link* bones (`bone_deforms[b] == False`): they carry no weight and are never
posed, they only carry the parent's motion to a child bone that starts elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import KeyDiffError


@dataclass(frozen=True)
class Rig:
    joints: np.ndarray                      # [J, 3] float64, object space
    parents: np.ndarray                     # [J] int64, exactly one -1 (the root joint)
    names: tuple[str, ...]                  # [J] joint names, unique
    bone_names: tuple[str, ...] = ()        # [B] unique; empty -> the tail joint's name
    bone_deforms: np.ndarray | None = None  # [B] bool; None -> every bone deforms

    def __post_init__(self) -> None:
        joints = np.asarray(self.joints, dtype=np.float64)
        parents = np.asarray(self.parents, dtype=np.int64)
        object.__setattr__(self, "joints", joints)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "names", tuple(self.names))
        if joints.ndim != 2 or joints.shape[1] != 3:
            raise KeyDiffError("invalid_rig", f"joints must have shape (J, 3), got {joints.shape}")
        num_joints = joints.shape[0]
        if num_joints < 2:
            raise KeyDiffError("invalid_rig", f"a rig needs at least 2 joints (1 bone), got {num_joints}")
        if not np.isfinite(joints).all():
            raise KeyDiffError("invalid_rig", "joints contain NaN or infinite coordinates")
        if parents.shape != (num_joints,):
            raise KeyDiffError("invalid_rig", f"parents must have shape ({num_joints},), got {parents.shape}")
        roots = np.flatnonzero(parents == -1)
        if len(roots) != 1:
            raise KeyDiffError("invalid_rig", f"a rig needs exactly one root (parent -1), got {len(roots)}")
        if parents.min() < -1 or parents.max() >= num_joints:
            raise KeyDiffError("invalid_rig", f"parent indices must lie in [-1, {num_joints - 1}]")
        _check_is_tree(parents)
        if len(self.names) != num_joints or len(set(self.names)) != num_joints:
            raise KeyDiffError("invalid_rig", f"names must be {num_joints} unique strings, got {len(self.names)}")
        bone_names = tuple(self.bone_names) or tuple(self.names[j] for j in self.bone_tail_joint)
        if len(bone_names) != num_joints - 1 or len(set(bone_names)) != num_joints - 1:
            raise KeyDiffError("invalid_rig", f"bone_names must be {num_joints - 1} unique strings")
        object.__setattr__(self, "bone_names", bone_names)
        deforms = np.ones(num_joints - 1, bool) if self.bone_deforms is None else np.asarray(self.bone_deforms, bool)
        if deforms.shape != (num_joints - 1,):
            raise KeyDiffError("invalid_rig", f"bone_deforms must have shape ({num_joints - 1},)")
        object.__setattr__(self, "bone_deforms", deforms)

    # --- joints -----------------------------------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return int(self.joints.shape[0])

    @property
    def root(self) -> int:
        return int(np.flatnonzero(self.parents == -1)[0])

    def joint_order(self) -> np.ndarray:
        """Joint indices with every parent before its children (breadth-first from the root)."""
        return topological_order(self.parents)

    # --- bones ------------------------------------------------------------------------------------------
    @property
    def num_bones(self) -> int:
        return self.num_joints - 1

    @property
    def bone_tail_joint(self) -> np.ndarray:
        """[B] the joint each bone ends at."""
        return np.flatnonzero(self.parents != -1)

    @property
    def bone_head_joint(self) -> np.ndarray:
        """[B] the joint each bone starts at (its tail joint's parent)."""
        return self.parents[self.bone_tail_joint]

    @property
    def bone_heads(self) -> np.ndarray:
        return self.joints[self.bone_head_joint]

    @property
    def bone_tails(self) -> np.ndarray:
        return self.joints[self.bone_tail_joint]

    @property
    def bone_parents(self) -> np.ndarray:
        """[B] index of each bone's parent bone, -1 for bones that start at the root joint."""
        bone_of_tail = np.full(self.num_joints, -1, dtype=np.int64)
        bone_of_tail[self.bone_tail_joint] = np.arange(self.num_bones)
        return bone_of_tail[self.bone_head_joint]

    def bone_order(self) -> np.ndarray:
        """Bone indices with every parent bone before its children."""
        bone_of_tail = np.full(self.num_joints, -1, dtype=np.int64)
        bone_of_tail[self.bone_tail_joint] = np.arange(self.num_bones)
        order = bone_of_tail[self.joint_order()]
        return order[order >= 0]

    def bone_descendants(self, bone: int) -> np.ndarray:
        """[B] bool: the bone itself and every bone below it (what moves when it is posed)."""
        parents = self.bone_parents
        moves = np.zeros(self.num_bones, bool)
        moves[bone] = True
        for b in self.bone_order():
            if parents[b] >= 0 and moves[parents[b]]:
                moves[b] = True
        return moves

    def transformed(self, matrix: np.ndarray) -> "Rig":
        """The same rig with joints mapped by a 4x4 similarity transform."""
        joints = self.joints @ matrix[:3, :3].T + matrix[:3, 3]
        return Rig(joints, self.parents, self.names, self.bone_names, self.bone_deforms)


def topological_order(parents: np.ndarray) -> np.ndarray:
    """Indices of a forest given by parent indices (-1 = a root), every parent before its children, breadth-first;
    indices unreachable from a root (a cycle) are left out."""
    children: dict[int, list[int]] = {}
    for j, p in enumerate(parents.tolist()):
        children.setdefault(p, []).append(j)
    order, frontier = [], children.get(-1, [])
    while frontier:
        order.extend(frontier)
        frontier = [c for j in frontier for c in children.get(j, [])]
    return np.asarray(order, dtype=np.int64)


def _check_is_tree(parents: np.ndarray) -> None:
    if len(topological_order(parents)) != len(parents):
        raise KeyDiffError("invalid_rig", "parents contain a cycle: some joints are not reachable from the root")


@dataclass(frozen=True)
class SkinWeights:
    """Sparse per-bone weights: each vertex has `k` (bone, weight) slots, rows sum to 1, unused slots 0."""

    indices: np.ndarray                      # [V, k] int32 bone indices
    weights: np.ndarray                      # [V, k] float32, each row sums to 1
    num_bones: int = field(default=0)

    def __post_init__(self) -> None:
        if self.indices.shape != self.weights.shape or self.indices.ndim != 2:
            raise KeyDiffError("invalid_argument", f"indices {self.indices.shape} and weights {self.weights.shape} differ")
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= self.num_bones):
            raise KeyDiffError("invalid_argument", f"bone indices must lie in [0, {self.num_bones - 1}]")

    @property
    def num_vertices(self) -> int:
        return int(self.indices.shape[0])

    @classmethod
    def from_dense(cls, dense: np.ndarray, k: int = 4) -> "SkinWeights":
        """Keep the k largest weights per row and renormalise; a row that is all zero raises."""
        dense = np.asarray(dense, dtype=np.float64)
        num_vertices, num_bones = dense.shape
        k = min(k, num_bones)
        if k < num_bones:
            top = np.argpartition(-dense, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(num_bones), (num_vertices, num_bones)).copy()
        vals = np.take_along_axis(dense, top, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")          # heaviest first, as glTF tools expect
        top, vals = np.take_along_axis(top, order, 1), np.take_along_axis(vals, order, 1)
        vals = np.clip(vals, 0.0, None)
        sums = vals.sum(axis=1, keepdims=True)
        if (sums <= 0).any():
            raise KeyDiffError("invalid_argument", f"{int((sums <= 0).sum())} vertices have no positive weight")
        vals = vals / sums
        top = np.where(vals > 0, top, 0)
        return cls(top.astype(np.int32), vals.astype(np.float32), num_bones)

    def to_dense(self) -> np.ndarray:
        """[V, B] float32 dense matrix (small meshes, tests and metrics only)."""
        dense = np.zeros((self.num_vertices, self.num_bones), np.float32)
        rows = np.repeat(np.arange(self.num_vertices), self.indices.shape[1])
        np.add.at(dense, (rows, self.indices.ravel()), self.weights.ravel())
        return dense
