"""The shared tail of every rigging job: canonical mesh + keypoints -> skeleton -> skin weights.

rig-mesh (a user's mesh) and rig (a mesh reconstructed from SV3D views) differ only in where the mesh and the
keypoints come from; from here on they are the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import KeyDiffError
from ..floor_root import add_floor_root
from ..mesh import Mesh
from ..progress import Progress
from ..rig import Rig, SkinWeights
from ..skeleton import SkeletonResult, build_skeleton
from ..skinning import DEFAULT_SHARPNESS, DEFAULT_SIGMA_SCALE, DEFAULT_TOP_K
from ..skinning_improved import SKINNING_METHODS, skin_weights
from ..symmetry import DEFAULT_SNAP, MirrorPlane, mirror_skeleton, onto_plane


@dataclass(frozen=True)
class SkinningOptions:
    method: str = "improved"                   # "improved" (surface heat), "eq9" (the paper's), "rigid"
    sigma_scale: float = DEFAULT_SIGMA_SCALE   # eq9/rigid: Gaussian width, x bounding-box diagonal
    sharpness: float = DEFAULT_SHARPNESS       # eq9/rigid: exponent on distance / sigma
    top_k: int = DEFAULT_TOP_K                 # influences per vertex (glTF and game engines take 4)

    def __post_init__(self) -> None:
        if self.method not in SKINNING_METHODS:
            raise KeyDiffError("invalid_argument", f"--skinning must be one of {SKINNING_METHODS}, got {self.method!r}")

    def settings(self) -> dict:
        """The settings each method takes (the heat method has no Gaussian width; rigid keeps one bone)."""
        if self.method == "improved":
            return {"top_k": self.top_k}
        gaussian = {"sigma_scale": self.sigma_scale, "sharpness": self.sharpness}
        return gaussian if self.method == "rigid" else {**gaussian, "top_k": self.top_k}


def rig_and_skin(
    canonical_mesh: Mesh, keypoints: np.ndarray, adjacency: np.ndarray, skinning: SkinningOptions, progress: Progress,
    *, ground: np.ndarray | None = None, mirror: MirrorPlane | None = None,
) -> tuple[SkeletonResult, SkinWeights]:
    """Skeleton from canonical keypoints, weights on the mesh's own vertices (both in the canonical frame).

    ground: [3] canonical point for a non-deforming floor root above the skeleton (backend/floor_root.py), added
    before skinning so the weights index the final bones; None = no floor root.
    mirror: the mesh's mirror plane when the keypoints were symmetrised across it (backend/symmetry/).
    """
    progress.stage("skeleton", 0.0)
    skeleton = mesh_skeleton(canonical_mesh, keypoints, adjacency, ground=ground, mirror=mirror)
    rig: Rig = skeleton.rig
    progress.stage("skeleton", 1.0, f"{rig.num_bones} bones")
    progress.stage("skinning", 0.0, skinning.method)
    weights = skin_weights(skinning.method, canonical_mesh.vertices, canonical_mesh.faces, rig, **skinning.settings())
    progress.stage("skinning", 1.0)
    return skeleton, weights


def mesh_skeleton(canonical_mesh: Mesh, keypoints: np.ndarray, adjacency: np.ndarray, *,
                  ground: np.ndarray | None = None, mirror: MirrorPlane | None = None) -> SkeletonResult:
    """The skeleton step of every rigging job (and of benchmarks/rigging_geometry.py): MST, then side names and a
    mirror-consistent tree on a symmetric mesh, then the floor root (on the mirror plane when it is near)."""
    lo, hi = canonical_mesh.bounding_box()
    diagonal = float(np.linalg.norm(hi - lo))
    # merge distances relative to the mesh, not to the keypoints' own spread (markers may cover a part only)
    skeleton = build_skeleton(keypoints, adjacency, object_size=diagonal)
    if mirror is not None:
        skeleton = mirror_skeleton(skeleton, mirror)
    if ground is not None:
        if mirror is not None:
            ground = onto_plane(ground, mirror, DEFAULT_SNAP * diagonal)
        skeleton = with_floor_root(skeleton, ground)
    return skeleton


def with_floor_root(skeleton: SkeletonResult, ground: np.ndarray) -> SkeletonResult:
    """The skeleton with a floor root joint appended (keypoint_to_joint stays valid: old joints keep their
    indices); the floor bone's confidence is 0, it was not predicted."""
    rig = add_floor_root(skeleton.rig, ground)
    if rig is skeleton.rig:
        return skeleton
    confidence = np.zeros(rig.num_bones)
    old_of_tail = np.full(rig.num_joints, -1, np.int64)
    old_of_tail[skeleton.rig.bone_tail_joint] = np.arange(skeleton.rig.num_bones)
    old = old_of_tail[rig.bone_tail_joint]                                   # [B'] old bone index or -1
    confidence[old >= 0] = skeleton.bone_confidence[old[old >= 0]]
    return replace(skeleton, rig=rig, bone_confidence=confidence)
