"""rig-mesh: a user's mesh in, a rigged bundle out, in the mesh's own coordinates.

    load (glb/gltf/obj/ply/stl, parts joined, Z up) -> canonical frame -> keypoints -> MST skeleton
    -> Gaussian-distance skinning on the user's own vertices -> rig mapped back -> bundle (atomic)

Keypoints come from a marker file (--markers) or from the keypoint network reading orbit renders of the mesh
(backend/pipeline/keypoint_source.py); nothing downstream knows which.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..cameras import canonical_transform
from ..errors import KeyDiffError
from ..export.bundle import RigResult, write_bundle
from ..mesh_io import load_mesh
from ..progress import Progress, SilentProgress
from ..skeleton import build_skeleton
from ..skinning import DEFAULT_SHARPNESS, DEFAULT_SIGMA_SCALE, DEFAULT_TOP_K
from ..skinning_improved import SKINNING_METHODS, skin_weights
from ..views.render import render_orbit
from ..views.viewset import ViewSet
from .keypoint_source import marker_keypoints, network_keypoints, pull_inside
from .preview import PREVIEW_FILE, write_preview


@dataclass(frozen=True)
class RigMeshOptions:
    markers: str | None = None                 # marker file (keypoints, optional edges), mesh coordinates
    checkpoint: str | None = None              # keypoint network; None = the shipped one (used without markers)
    device: str = "cpu"
    sigma_scale: float = DEFAULT_SIGMA_SCALE   # Eq. 9 Gaussian width, x bounding-box diagonal
    sharpness: float = DEFAULT_SHARPNESS       # Eq. 9 exponent on distance / sigma
    top_k: int = DEFAULT_TOP_K                 # influences per vertex (glTF and game engines take 4)
    skinning: str = "improved"                 # "improved" (surface heat), "eq9" (the paper's), "rigid"

    def __post_init__(self) -> None:
        if self.skinning not in SKINNING_METHODS:
            raise KeyDiffError("invalid_argument", f"--skinning must be one of {SKINNING_METHODS}, got {self.skinning!r}")


def rig_mesh(
    mesh_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: RigMeshOptions = RigMeshOptions(),
    progress: Progress = SilentProgress(),
) -> Path:
    progress.stage("load", 0.0, f"reading {Path(mesh_path).name}")
    mesh = load_mesh(mesh_path)
    to_canonical = canonical_transform(mesh.vertices)
    progress.stage("load", 1.0, f"{mesh.num_vertices:,} vertices, {len(mesh.faces):,} faces")

    progress.stage("keypoints", 0.0, "markers" if options.markers else "keypoint network")
    canonical_mesh = mesh.transformed(to_canonical.matrix)
    keypoints, adjacency = _keypoints(options, to_canonical, canonical_mesh)
    progress.stage("keypoints", 1.0, f"{len(keypoints)} keypoints")

    progress.stage("skeleton", 0.0)
    canonical_vertices = canonical_mesh.vertices
    lo, hi = canonical_vertices.min(axis=0), canonical_vertices.max(axis=0)
    # merge distances relative to the mesh, not to the keypoints' own spread (markers may cover a part only)
    skeleton = build_skeleton(keypoints, adjacency, object_size=float(np.linalg.norm(hi - lo)))
    rig_canonical = skeleton.rig
    progress.stage("skeleton", 1.0, f"{rig_canonical.num_bones} bones")

    progress.stage("skinning", 0.0, options.skinning)
    weights = skin_weights(options.skinning, canonical_vertices, mesh.faces, rig_canonical, **_skinning_settings(options))
    progress.stage("skinning", 1.0)

    progress.stage("export", 0.0, "writing the bundle")
    result = RigResult(
        mesh=mesh.with_normals(),
        rig=rig_canonical.transformed(to_canonical.inverse),
        weights=weights,
        canonical_to_object=to_canonical.inverse,
        keypoints=to_canonical.apply_inverse(keypoints),
        adjacency=adjacency,
        keypoint_to_joint=skeleton.keypoint_to_joint,
        settings={"job": "rig-mesh", "source": str(Path(mesh_path).name), **asdict(options)},
    )
    bundle = write_bundle(
        out_dir, result,
        extras=lambda folder: write_preview(folder / PREVIEW_FILE, result.mesh, result.rig, result.weights),
    )
    progress.stage("export", 1.0, str(bundle))
    return bundle


def _skinning_settings(options: RigMeshOptions) -> dict:
    """The settings each skinning method takes (the heat method has no Gaussian width; rigid keeps one bone)."""
    if options.skinning == "improved":
        return {"top_k": options.top_k}
    gaussian = {"sigma_scale": options.sigma_scale, "sharpness": options.sharpness}
    return gaussian if options.skinning == "rigid" else {**gaussian, "top_k": options.top_k}


def _keypoints(options: RigMeshOptions, to_canonical, canonical_mesh) -> tuple[np.ndarray, np.ndarray]:
    """Canonical keypoints [K, 3] and edge weights [K, K] from the markers or the network."""
    if options.markers is not None:
        return marker_keypoints(options.markers, to_canonical)

    def orbit_renders(image_size: int, frames) -> ViewSet:
        return render_orbit(canonical_mesh, image_size=image_size, frames=list(frames))

    keypoints, adjacency = network_keypoints(options.checkpoint, orbit_renders, options.device)
    return pull_inside(keypoints, canonical_mesh), adjacency
