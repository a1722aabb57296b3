"""Posing a body: random rotations within its limits, snake undulation, or retargeted motion capture.

Every path ends in per-bone local rotations [B, 3, 3] for `backend.posing.bone_transforms`, so the mesh,
the joints and the skin weights always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from backend.posing import bone_transforms, pose_joints, skin_vertices
from backend.rig import Rig, SkinWeights

from .body import Body
from .bvh import BvhClip
from .retarget import cmu_motion, face_front, local_rotations, retarget_world_rotations


@dataclass(frozen=True)
class Posed:
    """A body after posing, still in body units."""

    vertices: np.ndarray     # [V, 3]
    joints: np.ndarray       # [J, 3]
    rotations: np.ndarray    # [B, 3, 3] local rotations that produced it


def random_limited_rotations(limits: np.ndarray, rng: np.random.Generator, intensity: float = 1.0) -> np.ndarray:
    """[B, 3, 3]: per bone, angles uniform in intensity * [low, high] about the rest x, y, z axes (extrinsic)."""
    low, high = limits[:, 0] * intensity, limits[:, 1] * intensity               # [B, 3]
    angles = rng.uniform(0.0, 1.0, size=low.shape) * (high - low) + low
    return Rotation.from_euler("xyz", angles, degrees=True).as_matrix()


def snake_rotations(body: Body, rng: np.random.Generator) -> np.ndarray:
    """[B, 3, 3] a travelling-wave S-curve plus noise; the chain's rotations compose, so small per-bone
    angles add up to a sinuous body, and the head often lifts off the ground."""
    num = body.rig.num_bones
    along = np.arange(num)
    amplitude = rng.uniform(10.0, 35.0)
    wavelength = rng.uniform(3.0, 8.0)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    yaw = amplitude * np.sin(2.0 * np.pi * along / wavelength + phase) + rng.normal(0.0, 4.0, num)
    pitch = rng.normal(0.0, 3.0, num)
    pitch[0] = rng.uniform(-35.0, 5.0)                                            # raise (negative x) the head
    low, high = body.pose_limits[:, 0], body.pose_limits[:, 1]
    angles = np.clip(np.stack([pitch, np.zeros(num), yaw], axis=1), low, high)
    return Rotation.from_euler("xyz", angles, degrees=True).as_matrix()


def random_pose_rotations(body: Body, rng: np.random.Generator) -> np.ndarray:
    """[B, 3, 3] a plausible random pose for a body whose motion is not captured."""
    if body.category == "snake":
        return snake_rotations(body, rng)
    return random_limited_rotations(body.pose_limits, rng, intensity=rng.uniform(0.3, 1.0))


def mocap_rotations(rig: Rig, clip: BvhClip, frame: int, yaw_offset_deg: float = 0.0) -> np.ndarray:
    """[B, 3, 3] local rotations of `rig` (the H36M humanoid) in `frame` of a CMU clip, facing -Y."""
    world = retarget_world_rotations(rig, cmu_motion(clip, np.array([frame])))
    return local_rotations(rig, face_front(rig, world, yaw_offset_deg))[0]


def apply_pose(body: Body, rest_vertices: np.ndarray, weights: SkinWeights, rotations: np.ndarray) -> Posed:
    """Linear blend skinning of the rest mesh and forward kinematics of the joints with one pose."""
    transforms = bone_transforms(body.rig, rotations)
    return Posed(skin_vertices(rest_vertices, weights, transforms), pose_joints(body.rig, transforms), rotations)
