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

import numpy as np

from ..skeleton import SkeletonResult
from .keypoints import DEFAULT_COMPLETE, DEFAULT_PAIR, DEFAULT_SNAP, KeypointMirror, symmetrise_keypoints
from .plane import (AXES, CENTRE, DEFAULT_PLANE_TOLERANCE, LEFT, RIGHT, MirrorPlane, detect_mirror_plane,
                    onto_plane, plane_excess)
from .tree import (EXACT, SIDE_SUFFIX, MirrorReport, joint_mirror, mirror_report, mirror_rig, mirror_tree,
                   named_pairs)

__all__ = [
    "AXES", "CENTRE", "DEFAULT_COMPLETE", "DEFAULT_PAIR", "DEFAULT_PLANE_TOLERANCE", "DEFAULT_SNAP", "EXACT", "LEFT",
    "ORIGIN_ON_PLANE", "RIGHT", "SIDE_SUFFIX", "KeypointMirror", "MirrorPlane", "MirrorReport", "detect_mirror_plane",
    "joint_mirror", "mirror_keypoints", "mirror_report", "mirror_rig", "mirror_skeleton", "mirror_tree",
    "named_pairs", "onto_plane", "plane_excess", "symmetrise_keypoints",
]

ORIGIN_ON_PLANE = 1e-6                  # the file's origin lies on the mirror plane up to this x diagonal


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

