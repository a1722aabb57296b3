"""Linear blend skinning in numpy: pose a Rig with per-bone rotations and deform vertices.

A pose is one rotation per bone, expressed in the rest frame's axes and applied about the bone's head; it
composes down the bone tree (forward kinematics). This is what Blender does for a bone rotated in pose mode
and what a glTF joint node does when its rotation changes, so tests can compare all three.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from .rig import Rig, SkinWeights


def bone_transforms(rig: Rig, rotations: np.ndarray) -> np.ndarray:
    """[B, 4, 4] world transforms that carry rest-pose points to posed points, per bone.

    rotations: [B, 3, 3] rotation matrices (identity = rest pose).
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    if rotations.shape != (rig.num_bones, 3, 3):
        raise ValueError(f"rotations must have shape ({rig.num_bones}, 3, 3), got {rotations.shape}")
    heads = rig.bone_heads
    local = np.tile(np.eye(4), (rig.num_bones, 1, 1))
    local[:, :3, :3] = rotations
    local[:, :3, 3] = heads - np.einsum("bij,bj->bi", rotations, heads)   # rotate about the head
    world = np.empty_like(local)
    parents = rig.bone_parents
    for b in rig.bone_order():                                             # B steps, not V: cheap
        world[b] = local[b] if parents[b] < 0 else world[parents[b]] @ local[b]
    return world


def skin_vertices(vertices: np.ndarray, weights: SkinWeights, transforms: np.ndarray) -> np.ndarray:
    """[V, 3] posed vertices: sum over slots of weight * (bone transform @ vertex)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    blended = np.einsum("vk,vkij->vij", weights.weights.astype(np.float64), transforms[weights.indices])
    return np.einsum("vij,vj->vi", blended[:, :3, :3], vertices) + blended[:, :3, 3]


def pose_joints(rig: Rig, transforms: np.ndarray) -> np.ndarray:
    """[J, 3] joint positions after posing (the root joint stays where it is)."""
    posed = rig.joints.copy()
    tails = rig.bone_tail_joint
    posed[tails] = np.einsum("bij,bj->bi", transforms[:, :3, :3], rig.joints[tails]) + transforms[:, :3, 3]
    return posed


def random_rotations(num_bones: int, max_degrees: float, rng: np.random.Generator) -> np.ndarray:
    """[B, 3, 3] rotations about uniformly random axes by angles uniform in [0, max_degrees].

    This is the pose distribution of the rigging benchmark (reference/skinning_baselines.md).
    """
    axes = rng.normal(size=(num_bones, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.radians(rng.uniform(0.0, max_degrees, size=num_bones))
    return Rotation.from_rotvec(axes * angles[:, None]).as_matrix()
