"""Turn a glTF joint tree (points + parents) into our `Rig` of edge bones, exactly.

A glTF joint is a point that rotates everything below it; our bones are segments. For each joint n we make one
deforming bone whose HEAD is n's position (so posing the bone rotates about the same point the glTF node does)
and whose TAIL is, in order of preference:
  1. an explicit tail hint: our own files store it in node extras; Blender's exporter writes a childless
     `<name>_end` node at the tip of each leaf bone, which the reader passes here too;
  2. the head of the child joint with the most descendants (ties: the first), ignoring children that sit on n;
  3. for leaves without a hint: an extension along the parent→n direction, half as long as the parent bone
     (5 % of the skeleton size when there is no usable parent, pointing +Z, our world up).
Children that do not start at that tail hang from it through a non-deforming link bone (rig.py), so the bone
hierarchy moves every child exactly as the glTF hierarchy does. Several roots (e.g. IK targets that are
siblings of the body) all start at the rig's root joint, placed at the main root (the one with most
descendants); the others reach their heads through link bones whose parent is no bone, so posing the main
root does not move them — as in the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rig import Rig

LEAF_EXTENSION = 0.5          # leaf bone length as a fraction of its parent bone
LONE_ROOT_EXTENSION = 0.05    # fraction of the skeleton size, for a joint with neither child nor parent bone
COINCIDENT = 1e-5             # fraction of the skeleton size under which two points are the same point


@dataclass(frozen=True)
class JointTree:
    """The plain glTF skeleton in one space: what skeleton metrics (CD-J2J, J2B, B2B) compare."""

    positions: np.ndarray                 # [N, 3] joint (node) positions
    parents: np.ndarray                   # [N] nearest joint ancestor, -1 for each root (several allowed)
    names: tuple[str, ...]                # [N] unique
    tail_hints: np.ndarray | None = None  # [N, 3] explicit bone tails, NaN where unknown
    deforms: np.ndarray | None = None     # [N] bool, False for non-deforming joints (our link bones)
    order_keys: np.ndarray | None = None  # [N] bone order to reproduce (our own files), NaN -> build order


@dataclass(frozen=True)
class BuiltRig:
    rig: Rig
    bone_of_joint: np.ndarray    # [N] the bone each glTF joint became
    joint_of_bone: np.ndarray    # [B] the glTF joint of each bone, -1 for link bones the builder added


def skeleton_size(points: np.ndarray) -> float:
    """Bounding-box diagonal; the unit every tolerance and default length here is relative to."""
    finite = points[np.isfinite(points).all(axis=1)]
    return float(np.linalg.norm(finite.max(axis=0) - finite.min(axis=0))) if len(finite) else 0.0


def build_rig(
    tree: JointTree,
    *,
    fallback_size: float = 1.0,
    root_joint_name: str | None = None,
    root_joint_index: int | None = None,
    tail_joint_names: tuple[str | None, ...] | None = None,
) -> BuiltRig:
    """The Rig (edge bones + link bones) equivalent to the joint tree; see the module docstring."""
    pos = np.asarray(tree.positions, dtype=np.float64)
    parents = np.asarray(tree.parents, dtype=np.int64)
    num = len(pos)
    hints = np.full((num, 3), np.nan) if tree.tail_hints is None else np.asarray(tree.tail_hints, np.float64)
    deforms = np.ones(num, bool) if tree.deforms is None else np.asarray(tree.deforms, bool)
    size = skeleton_size(np.vstack([pos, hints])) or fallback_size
    tol = COINCIDENT * size

    children: list[list[int]] = [[] for _ in range(num)]
    for j, p in enumerate(parents.tolist()):
        if p >= 0:
            children[p].append(j)
    order = _preorder(children, np.flatnonzero(parents < 0).tolist())
    descendants = np.zeros(num, np.int64)
    for j in reversed(order):
        if parents[j] >= 0:
            descendants[parents[j]] += descendants[j] + 1
    tails = _choose_tails(pos, parents, children, descendants, hints, size, tol)

    roots = np.flatnonzero(parents < 0).tolist()
    main_root = max(roots, key=lambda r: (descendants[r], -r))
    joints: list[np.ndarray] = [pos[main_root]]
    joint_parent: list[int] = [-1]
    bone_names: list[str] = []
    bone_deforms: list[bool] = []
    joint_of_bone: list[int] = []
    bone_of_joint = np.full(num, -1, np.int64)
    used_names = set(tree.names)

    def add_bone(head: int, tail: np.ndarray, name: str, deform: bool, joint: int) -> int:
        joints.append(tail)
        joint_parent.append(head)
        bone_names.append(name)
        bone_deforms.append(deform)
        joint_of_bone.append(joint)
        return len(joints) - 1            # the new tail joint

    stack = [(r, 0) for r in reversed([main_root] + [r for r in roots if r != main_root])]
    while stack:
        j, at = stack.pop()
        head = at
        if np.linalg.norm(pos[j] - joints[at]) > tol:
            link = _unique_name(f"{tree.names[j]}.link", used_names)
            head = add_bone(at, pos[j], link, False, -1)
        tail_joint = add_bone(head, tails[j], tree.names[j], bool(deforms[j]), j)
        bone_of_joint[j] = tail_joint - 1
        stack.extend((c, tail_joint) for c in reversed(children[j]))

    joint_of_bone_arr = np.asarray(joint_of_bone, np.int64)
    perm = _bone_permutation(joint_of_bone_arr, tree.order_keys, bone_of_joint)
    num_bones = len(bone_names)
    root_at = 0 if root_joint_index is None else int(np.clip(root_joint_index, 0, num_bones))
    # Old joint ids: 0 = root, k + 1 = tail of old bone k. New: tails in `perm` order with the root at root_at.
    new_of_old = np.empty(num_bones + 1, np.int64)
    new_of_old[0] = root_at
    slots = np.arange(num_bones)
    new_of_old[perm + 1] = np.where(slots < root_at, slots, slots + 1)
    old_parents = np.asarray(joint_parent, np.int64)
    new_joints = np.empty((num_bones + 1, 3))
    new_joints[new_of_old] = np.asarray(joints)
    new_parents = np.empty(num_bones + 1, np.int64)
    new_parents[new_of_old] = np.where(old_parents < 0, -1, new_of_old[np.maximum(old_parents, 0)])

    names_old = [root_joint_name or f"{tree.names[main_root]}.head"]
    for k, bone in enumerate(bone_names):
        given = tail_joint_names[joint_of_bone[k]] if tail_joint_names and joint_of_bone[k] >= 0 else None
        names_old.append(given or f"{bone}.tail")
    names_old = _unique_all(names_old)
    joint_names = [""] * (num_bones + 1)
    for old, new in enumerate(new_of_old.tolist()):
        joint_names[new] = names_old[old]

    rig = Rig(
        new_joints, new_parents, tuple(joint_names),
        bone_names=tuple(bone_names[p] for p in perm),
        bone_deforms=np.asarray(bone_deforms)[perm],
    )
    new_bone_of_old = np.empty(num_bones, np.int64)
    new_bone_of_old[perm] = np.arange(num_bones)
    return BuiltRig(rig, new_bone_of_old[bone_of_joint], joint_of_bone_arr[perm])


def _choose_tails(pos, parents, children, descendants, hints, size: float, tol: float) -> np.ndarray:
    tails = np.empty_like(pos)
    for j in range(len(pos)):
        if np.isfinite(hints[j]).all() and np.linalg.norm(hints[j] - pos[j]) > tol:
            tails[j] = hints[j]
            continue
        away = [c for c in children[j] if np.linalg.norm(pos[c] - pos[j]) > tol]
        if away:
            tails[j] = pos[max(away, key=lambda c: (descendants[c], -c))]
            continue
        p = parents[j]
        along = pos[j] - pos[p] if p >= 0 else np.zeros(3)
        length = float(np.linalg.norm(along))
        if length > tol:
            tails[j] = pos[j] + along * LEAF_EXTENSION
        else:
            tails[j] = pos[j] + np.array([0.0, 0.0, LONE_ROOT_EXTENSION * max(size, tol)])
    return tails


def _bone_permutation(joint_of_bone: np.ndarray, order_keys, bone_of_joint: np.ndarray) -> np.ndarray:
    """Bones sorted by the joints' order keys (link bones just before their joint's bone); build order else."""
    num_bones = len(joint_of_bone)
    if order_keys is None or not np.isfinite(order_keys).all():
        return np.arange(num_bones)
    keys = np.empty(num_bones)
    deforming = joint_of_bone >= 0
    keys[deforming] = np.asarray(order_keys, np.float64)[joint_of_bone[deforming]]
    # A builder-added link bone is always created right before its joint's bone: the next bone.
    link_rows = np.flatnonzero(~deforming)
    keys[link_rows] = keys[np.minimum(link_rows + 1, num_bones - 1)] - 0.5
    return np.argsort(keys, kind="stable")


def _preorder(children: list[list[int]], roots: list[int]) -> list[int]:
    order, stack = [], list(reversed(roots))
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return order


def _unique_name(name: str, used: set[str]) -> str:
    candidate, k = name, 1
    while candidate in used:
        candidate, k = f"{name}.{k:03d}", k + 1
    used.add(candidate)
    return candidate


def _unique_all(names: list[str]) -> list[str]:
    used: set[str] = set()
    return [_unique_name(n, used) for n in names]
