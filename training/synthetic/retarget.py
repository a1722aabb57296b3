"""Retarget CMU motion capture onto a synthetic H36M humanoid: bone directions from the clip, lengths ours.

Every clip in ../shared/data/mocap uses the cgspeed CMU hierarchy (31 joints + 7 end sites, same order), but
the metre-scaled 131_* files rename joints (their "LeftShoulder" is the others' "LeftArm") and rest with the
arms down instead of in a T-pose. So clips are matched by hierarchy, not by name, and rest poses cancel out:

    W_b = Align(W0 a_b -> e_b) . W0 . A_b

where A_b turns our rest bone direction onto the clip's rest direction, W0 is the world rotation of the clip
joint that carries that segment (it gives the twist, e.g. which way the foot points), and the final minimal
rotation makes the bone direction exactly the clip's posed direction e_b. Local rotations W_parent^T W_b
then drive `backend.posing`, so the mesh follows through our true skin weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from backend.errors import KeyDiffError
from backend.rig import Rig

from .bvh import BvhClip

# The cgspeed CMU hierarchy, file order, end sites included: (name, parent index).
CMU_NODES: tuple[tuple[str, int], ...] = (
    ("Hips", -1), ("LHipJoint", 0), ("LeftUpLeg", 1), ("LeftLeg", 2), ("LeftFoot", 3), ("LeftToeBase", 4),
    ("LeftToeBase_End", 5), ("RHipJoint", 0), ("RightUpLeg", 7), ("RightLeg", 8), ("RightFoot", 9),
    ("RightToeBase", 10), ("RightToeBase_End", 11), ("LowerBack", 0), ("Spine", 13), ("Spine1", 14),
    ("Neck", 15), ("Neck1", 16), ("Head", 17), ("Head_End", 18), ("LeftShoulder", 15), ("LeftArm", 20),
    ("LeftForeArm", 21), ("LeftHand", 22), ("LeftFingerBase", 23), ("LFingers", 24), ("LFingers_End", 25),
    ("LThumb", 23), ("LThumb_End", 27), ("RightShoulder", 15), ("RightArm", 29), ("RightForeArm", 30),
    ("RightHand", 31), ("RightFingerBase", 32), ("RFingers", 33), ("RFingers_End", 34), ("RThumb", 32),
    ("RThumb_End", 36),
)
CMU_INDEX = {name: i for i, (name, _) in enumerate(CMU_NODES)}
CMU_PARENTS = np.array([p for _, p in CMU_NODES])

# Our bone (named by its tail joint) <- CMU segment (from, to) and the CMU node whose rotation gives its twist.
BONE_SOURCES: dict[str, tuple[str, str, str]] = {
    "right_hip": ("Hips", "RightUpLeg", "RHipJoint"),
    "right_knee": ("RightUpLeg", "RightLeg", "RightUpLeg"),
    "right_ankle": ("RightLeg", "RightFoot", "RightLeg"),
    "left_hip": ("Hips", "LeftUpLeg", "LHipJoint"),
    "left_knee": ("LeftUpLeg", "LeftLeg", "LeftUpLeg"),
    "left_ankle": ("LeftLeg", "LeftFoot", "LeftLeg"),
    "spine": ("Hips", "Spine1", "Spine"),
    "thorax": ("Spine1", "Neck1", "Neck"),
    "neck": ("Neck1", "Head", "Neck1"),
    "head": ("Head", "Head_End", "Head"),
    "left_shoulder": ("Neck1", "LeftArm", "LeftShoulder"),
    "left_elbow": ("LeftArm", "LeftForeArm", "LeftArm"),
    "left_wrist": ("LeftForeArm", "LeftHand", "LeftForeArm"),
    "right_shoulder": ("Neck1", "RightArm", "RightShoulder"),
    "right_elbow": ("RightArm", "RightForeArm", "RightArm"),
    "right_wrist": ("RightForeArm", "RightHand", "RightForeArm"),
}


@dataclass(frozen=True)
class Motion:
    """World positions and rotations of the CMU nodes over some frames (world axes, Z up, clip units)."""

    positions: np.ndarray       # [F, N, 3]
    rotations: np.ndarray       # [F, N, 3, 3]
    rest_positions: np.ndarray  # [N, 3]


def check_cmu_hierarchy(clip: BvhClip) -> None:
    """Raise KeyDiffError unless `clip` has the cgspeed CMU hierarchy (names may differ, structure may not)."""
    if len(clip.parents) != len(CMU_PARENTS) or not np.array_equal(clip.parents, CMU_PARENTS):
        raise KeyDiffError(
            "invalid_argument",
            f"BVH {clip.source!r} has {clip.num_joints} joints in a hierarchy that is not the cgspeed CMU one "
            f"(31 joints, root Hips); only CMU clips can be retargeted onto the synthetic humanoid",
        )


def cmu_motion(clip: BvhClip, frames: np.ndarray) -> Motion:
    check_cmu_hierarchy(clip)
    positions, rotations = clip.forward_kinematics(np.asarray(frames))
    return Motion(positions, rotations, clip.rest_positions())


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[..., 3, 3] the smallest rotation taking unit vectors a [..., 3] onto b [..., 3]."""
    a, b = np.broadcast_arrays(_unit(a), _unit(b))
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.einsum("...i,...i->...", a, b)
    angle = np.arctan2(sin, cos)
    # Opposite vectors: any axis perpendicular to a will do.
    fallback = np.cross(a, np.array([1.0, 0.0, 0.0]))
    fallback = np.where(np.linalg.norm(fallback, axis=-1, keepdims=True) < 1e-6, np.cross(a, [0.0, 1.0, 0.0]), fallback)
    axis = np.where((sin < 1e-9)[..., None], fallback, axis)
    rotvec = _unit(axis) * angle[..., None]
    return Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(a.shape[:-1] + (3, 3))


def retarget_world_rotations(rig: Rig, motion: Motion) -> np.ndarray:
    """[F, B, 3, 3] world rotation of each of our bones so that its direction matches the clip's."""
    num_frames = motion.positions.shape[0]
    rest_dirs = _unit(rig.bone_tails - rig.bone_heads)                          # [B, 3]
    world = np.empty((num_frames, rig.num_bones, 3, 3))
    for b, name in enumerate(rig.bone_names):
        try:
            src, dst, carrier = (CMU_INDEX[n] for n in BONE_SOURCES[name])
        except KeyError:
            raise KeyDiffError("invalid_rig", f"bone {name!r} has no motion-capture source; expected the "
                                              f"17-joint H36M humanoid") from None
        clip_rest = _unit(motion.rest_positions[dst] - motion.rest_positions[src])   # [3]
        to_clip_rest = align(rest_dirs[b], clip_rest)                           # [3, 3]
        carried = motion.rotations[:, carrier] @ to_clip_rest                   # [F, 3, 3]
        posed_dir = motion.positions[:, dst] - motion.positions[:, src]         # [F, 3]
        world[:, b] = align(carried @ rest_dirs[b], posed_dir) @ carried
    return world


def local_rotations(rig: Rig, world: np.ndarray) -> np.ndarray:
    """[F, B, 3, 3] per-bone rotations for `backend.posing.bone_transforms` from world rotations."""
    parents = rig.bone_parents
    local = world.copy()
    has_parent = parents >= 0
    local[:, has_parent] = np.swapaxes(world[:, parents[has_parent]], -1, -2) @ world[:, has_parent]
    return local


def face_front(rig: Rig, world: np.ndarray, yaw_offset_deg: np.ndarray | float = 0.0) -> np.ndarray:
    """Turn each frame about Z so the pelvis faces -Y (left hip towards +X), then by `yaw_offset_deg`.

    Mocap subjects walk and turn; the canonical frame wants the body facing the front view.
    """
    left, right = rig.names.index("left_hip"), rig.names.index("right_hip")
    b_left, b_right = rig.bone_names.index("left_hip"), rig.bone_names.index("right_hip")
    root = rig.joints[rig.root]
    across = (world[:, b_left] @ (rig.joints[left] - root)) - (world[:, b_right] @ (rig.joints[right] - root))
    yaw = np.arctan2(across[:, 1], across[:, 0])                                # [F] angle of left-hip axis
    turn = -yaw + np.radians(np.broadcast_to(yaw_offset_deg, yaw.shape))
    spin = Rotation.from_euler("z", turn[:, None]).as_matrix()                         # [F, 3, 3]
    return spin[:, None] @ world
