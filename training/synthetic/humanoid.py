"""Procedural humans on the 17-joint Human3.6M skeleton, in metres, so MPJPE on them reads in millimetres.

Joint order and meaning follow the 17-joint H36M list used for evaluation (reference/keypoints.md §2):
pelvis, right hip/knee/ankle, left hip/knee/ankle, spine, thorax, neck, head (top of the head), left
shoulder/elbow/wrist, right shoulder/elbow/wrist. Our "neck" sits at the base of the skull (H36M's
"Neck/Nose" marker is a little higher and forward). Feet and hands have no joint of their own in that list,
so they ride rigidly on the shin and forearm bones. Rest pose: arms 35 degrees below horizontal, legs straight.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backend.rig import Rig

from .body import Body, Part, capsule_on_bone, ellipsoid_on_bone, skinned_mesh
from .palette import bone, pose_limits, random_colors, rig_from_table, skin_color

H36M_JOINTS: tuple[str, ...] = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "neck", "head",
    "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)
H36M_PARENTS: tuple[str | None, ...] = (
    None, "pelvis", "right_hip", "right_knee", "pelvis", "left_hip", "left_knee",
    "pelvis", "spine", "thorax", "neck",
    "thorax", "left_shoulder", "left_elbow", "thorax", "right_shoulder", "right_elbow",
)
HEIGHT_RANGE_M = (1.5, 1.9)
ARM_DROP_DEG = 35.0


def build_humanoid(rng: np.random.Generator, body_id: str) -> Body:
    """A random adult: height uniform in 1.5-1.9 m, segment lengths within +-8 %, girth 0.8-1.3 times average."""
    height = rng.uniform(*HEIGHT_RANGE_M)
    jit = lambda lo=0.92, hi=1.08: rng.uniform(lo, hi)  # noqa: E731  (a tiny local sampler)
    girth = rng.uniform(0.8, 1.3)
    # Lengths as fractions of height; the finished body is rescaled to exactly `height` below.
    hip_half, thigh, shin, ankle_z = 0.052 * jit(), 0.245 * jit(), 0.245 * jit(), 0.045
    pelvis_z = ankle_z + shin + thigh + 0.02
    spine_z = pelvis_z + 0.10 * jit()
    thorax_z = spine_z + 0.19 * jit()
    neck_z = thorax_z + 0.065 * jit()
    head_z = neck_z + 0.115 * jit(0.95, 1.05)
    shoulder_half, upper_arm, forearm = 0.095 * jit(), 0.17 * jit(), 0.15 * jit()
    arm_dir = np.array([np.cos(np.radians(ARM_DROP_DEG)), 0.0, -np.sin(np.radians(ARM_DROP_DEG))])

    table: dict[str, tuple[float, float, float]] = {"pelvis": (0.0, 0.0, pelvis_z)}
    for side, sx in (("right", -1.0), ("left", 1.0)):
        table[f"{side}_hip"] = (sx * hip_half, 0.0, pelvis_z - 0.02)
        table[f"{side}_knee"] = (sx * hip_half, -0.01, pelvis_z - 0.02 - thigh)
        table[f"{side}_ankle"] = (sx * hip_half, 0.0, ankle_z)
        shoulder = np.array([sx * shoulder_half, 0.0, thorax_z - 0.02])
        elbow = shoulder + upper_arm * arm_dir * [sx, 1.0, 1.0]
        table[f"{side}_shoulder"] = tuple(shoulder)
        table[f"{side}_elbow"] = tuple(elbow)
        table[f"{side}_wrist"] = tuple(elbow + forearm * arm_dir * [sx, 1.0, 1.0])
    table.update(spine=(0.0, 0.01, spine_z), thorax=(0.0, 0.0, thorax_z), neck=(0.0, 0.005, neck_z),
                 head=(0.0, 0.0, head_z))
    rig = rig_from_table([(name, parent, table[name]) for name, parent in zip(H36M_JOINTS, H36M_PARENTS)])

    colors = random_colors(rng, ("shirt", "trousers", "shoes", "hair"))
    skin = skin_color(rng)
    sleeve = colors["shirt"] if rng.uniform() < 0.5 else skin
    g = girth
    parts: list[Part] = [
        _pelvis(rig, hip_half, g, colors["trousers"]),
        ellipsoid_on_bone(rig, bone(rig, "spine"), "abdomen", np.array([0.10, 0.065, 0.085]) * [g, g, 1],
                          colors["shirt"], at=0.55, blend_tail=0.04, direction=(0, 0, 1)),
        ellipsoid_on_bone(rig, bone(rig, "thorax"), "chest", np.array([0.12, 0.075, 0.125]) * [g, g, 1],
                          colors["shirt"], at=0.55, blend_head=0.04, direction=(0, 0, 1)),
        capsule_on_bone(rig, bone(rig, "neck"), "neck", 0.03 * g, 0.028 * g, skin, blend_head=0.03, blend_tail=0.02),
        ellipsoid_on_bone(rig, bone(rig, "head"), "head", (0.055, 0.065, 0.065), skin, at=0.5, blend_head=0.02,
                          direction=(0, 0, 1)),
        ellipsoid_on_bone(rig, bone(rig, "head"), "hair", (0.06, 0.066, 0.045), colors["hair"], at=0.62,
                          offset=(0, 0.008, 0), direction=(0, 0, 1)),
        ellipsoid_on_bone(rig, bone(rig, "head"), "nose", (0.011, 0.02, 0.018), skin, at=0.4,
                          offset=(0, -0.058, 0), direction=(0, 0, 1)),
    ]
    for side in ("left", "right"):
        parts += [
            capsule_on_bone(rig, bone(rig, f"{side}_shoulder"), f"{side}_clavicle", 0.045 * g, 0.045 * g,
                            colors["shirt"], blend_head=0.03),
            capsule_on_bone(rig, bone(rig, f"{side}_elbow"), f"{side}_upper_arm", 0.042 * g, 0.034 * g,
                            colors["shirt"], blend_head=0.04, blend_tail=0.035),
            capsule_on_bone(rig, bone(rig, f"{side}_wrist"), f"{side}_forearm", 0.032 * g, 0.024 * g, sleeve,
                            blend_head=0.035),
            ellipsoid_on_bone(rig, bone(rig, f"{side}_wrist"), f"{side}_hand", (0.016, 0.038, 0.05), skin,
                              at=1.0 + 0.05 / forearm),
            capsule_on_bone(rig, bone(rig, f"{side}_knee"), f"{side}_thigh", 0.068 * g, 0.05 * g,
                            colors["trousers"], blend_head=0.05, blend_tail=0.04),
            capsule_on_bone(rig, bone(rig, f"{side}_ankle"), f"{side}_shin", 0.047 * g, 0.032 * g,
                            colors["trousers"], blend_head=0.04),
            ellipsoid_on_bone(rig, bone(rig, f"{side}_ankle"), f"{side}_foot", (0.037, 0.024, 0.078),
                              colors["shoes"], at=1.0, offset=(0, -0.045, -0.022), direction=(0, -1, 0)),
        ]
    limits = pose_limits(rig, _HUMAN_LIMITS)
    body = Body("humanoid", body_id, rig, tuple(parts), limits, units="metres")
    mesh, _, _ = skinned_mesh(body)
    lo, hi = mesh.bounding_box()
    # Stand on z = 0 and be exactly `height` tall: shift, then scale about the origin.
    shift = np.array([0.0, 0.0, -lo[2]])
    body = _shifted(body, shift).scaled(height / float(hi[2] - lo[2]))
    return replace(body, extras={"height_m": float(height)})


def _pelvis(rig, hip_half: float, girth: float, color) -> Part:
    """One ellipsoid shared by both hip bones: the left half follows the left hip, the right half the right."""
    part = ellipsoid_on_bone(rig, bone(rig, "right_hip"), "pelvis", np.array([hip_half + 0.055, 0.07, 0.07]) * [girth, girth, 1],
                             color, at=0.0, offset=(0, 0, -0.015), direction=(0, 0, 1))
    return Part(part.name, part.bone, part.shape, part.origin, part.axes, part.size, part.color,
                split_bone=bone(rig, "left_hip"), split_width=0.05)


def _shifted(body: Body, shift: np.ndarray) -> Body:
    rig = Rig(body.rig.joints + shift, body.rig.parents, body.rig.names)
    parts = tuple(replace(p, origin=p.origin + shift) for p in body.parts)
    return replace(body, rig=rig, parts=parts)


# Random-pose limits (degrees about the rest x, y, z axes) for when no motion capture is given. x is the
# body's left-right axis: a positive x rotation swings a hanging leg backwards and tips the spine forwards.
_HUMAN_LIMITS = {
    "right_knee": ((-70, -10, -15), (25, 10, 15)), "left_knee": ((-70, -10, -15), (25, 10, 15)),
    "right_ankle": ((0, 0, -5), (100, 0, 5)), "left_ankle": ((0, 0, -5), (100, 0, 5)),
    "spine": ((-10, -10, -20), (30, 10, 20)), "thorax": ((-10, -10, -20), (20, 10, 20)),
    "neck": ((-20, -10, -30), (20, 10, 30)), "head": ((-20, -10, -30), (25, 10, 30)),
    "left_elbow": ((-70, -60, -50), (70, 60, 40)), "right_elbow": ((-70, -60, -40), (70, 60, 50)),
    "left_wrist": ((-30, -90, -100), (30, 20, 10)), "right_wrist": ((-30, -20, -10), (30, 90, 100)),
}
