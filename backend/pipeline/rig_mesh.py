"""rig-mesh: a user's mesh in, a rigged bundle out, in the mesh's own coordinates.

    load (glb/gltf/obj/ply/stl, parts joined, Z up) -> canonical frame -> keypoints -> MST skeleton
    -> skinning on the user's own vertices -> rig mapped back -> bundle (atomic)

Keypoints come from a marker file (--markers), from the keypoint network reading orbit renders of the mesh, from
the mesh's curve skeleton (`geometry`, no training, any creature), or from the network snapped onto that curve
skeleton (`snapped`) (backend/pipeline/keypoint_source.py); nothing downstream knows which.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..cameras import CanonicalTransform, canonical_transform
from ..errors import KeyDiffError
from ..export.bundle import RigResult, write_bundle
from ..floor_root import ground_point
from ..mesh import Mesh
from ..mesh_io import load_mesh
from ..progress import Progress, SilentProgress
from ..symmetry import MirrorPlane, mirror_keypoints
from ..views.render import render_orbit
from ..views.viewset import ViewSet
from .assemble import SkinningOptions, rig_and_skin
from .keypoint_source import (
    geometry_keypoints, marker_keypoints, network_keypoints, pull_inside, snap_to_curve_skeleton,
)
from .preview import PREVIEW_FILE, write_preview

KEYPOINT_SOURCES = ("geometry", "network", "snapped")   # without markers: which source finds the keypoints
# The curve skeleton is the default: it needs no training and scored best on every real character of
# benchmarks/results/rigging.json (mean CD-J2J 0.106 vs the humanoid-only network's 0.219).
DEFAULT_KEYPOINT_SOURCE = "geometry"


@dataclass(frozen=True)
class RigMeshOptions:
    markers: str | None = None                 # marker file (keypoints, optional edges), mesh coordinates
    keypoints: str | None = None               # without markers: geometry (default), network or snapped
    checkpoint: str | None = None              # keypoint network; None = the shipped one (used without markers)
    device: str = "cpu"
    skinning: SkinningOptions = field(default_factory=SkinningOptions)
    # a non-deforming root bone on the floor under the body (backend/floor_root.py), as game engines' root
    # motion expects; None = on, except with markers (a marker file says exactly which joints the user wants)
    floor_root: bool | None = None
    # a mirror-symmetric mesh gets a mirror-symmetric rig with Blender's .L/.R names (backend/symmetry/);
    # never with markers (a marker file says exactly which joints the user wants)
    symmetry: bool = True

    def __post_init__(self) -> None:
        if self.keypoints is not None and self.keypoints not in KEYPOINT_SOURCES:
            raise KeyDiffError("invalid_argument",
                               f"--keypoints must be one of {KEYPOINT_SOURCES}, got {self.keypoints!r}")
        if self.markers is not None and self.keypoints is not None:
            raise KeyDiffError("invalid_argument",
                               f"--markers and --keypoints {self.keypoints} are two keypoint sources: pass one")

    def source(self) -> str:
        if self.markers is not None:
            return "markers"
        return self.keypoints or DEFAULT_KEYPOINT_SOURCE

    def wants_floor_root(self) -> bool:
        return self.markers is None if self.floor_root is None else bool(self.floor_root)

    def wants_symmetry(self) -> bool:
        return bool(self.symmetry) and self.markers is None


def rig_mesh(
    mesh_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: RigMeshOptions = RigMeshOptions(),
    progress: Progress = SilentProgress(),
) -> Path:
    progress.stage("load", 0.0, f"reading {Path(mesh_path).name}")
    mesh = load_mesh(mesh_path)
    to_canonical = canonical_transform(mesh.vertices)
    canonical_mesh = mesh.transformed(to_canonical.matrix)
    progress.stage("load", 1.0, f"{mesh.num_vertices:,} vertices, {len(mesh.faces):,} faces")

    progress.stage("keypoints", 0.0, options.source())
    keypoints, adjacency = _keypoints(options, to_canonical, canonical_mesh)
    # the file's origin, seen in the canonical frame: game assets put it on the floor under the character
    origin = to_canonical.apply(np.zeros(3))[0]
    mirror: MirrorPlane | None = None
    if options.wants_symmetry():
        keypoints, adjacency, mirror = mirror_keypoints(canonical_mesh.vertices, canonical_mesh.faces,
                                                        keypoints, adjacency, origin)
    progress.stage("keypoints", 1.0, f"{len(keypoints)} keypoints"
                   + (f", mirror-symmetric across {mirror.name}" if mirror else ""))

    ground = ground_point(canonical_mesh.vertices, origin) if options.wants_floor_root() else None
    skeleton, weights = rig_and_skin(canonical_mesh, keypoints, adjacency, options.skinning, progress, ground=ground,
                                     mirror=mirror)

    progress.stage("export", 0.0, "writing the bundle")
    result = RigResult(
        mesh=mesh.with_normals(),
        rig=skeleton.rig.transformed(to_canonical.inverse),
        weights=weights,
        canonical_to_object=to_canonical.inverse,
        keypoints=to_canonical.apply_inverse(keypoints),
        adjacency=adjacency,
        keypoint_to_joint=skeleton.keypoint_to_joint,
        settings={"job": "rig-mesh", "source": str(Path(mesh_path).name), **asdict(options),
                  "keypoints": options.source(), "floor_root": options.wants_floor_root(),
                  "symmetry": options.wants_symmetry(),
                  "mirror": mirror.transformed(to_canonical.inverse).to_dict() if mirror else None},
    )
    bundle = write_bundle(
        out_dir, result,
        extras=lambda folder: write_preview(folder / PREVIEW_FILE, result.mesh, result.rig, result.weights),
    )
    progress.stage("export", 1.0, str(bundle))
    return bundle


def _keypoints(options: RigMeshOptions, to_canonical: CanonicalTransform,
               canonical_mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Canonical keypoints [K, 3] and edge weights [K, K] from the markers, the network or the geometry."""
    source = options.source()
    if source == "markers":
        return marker_keypoints(options.markers, to_canonical)
    if source == "geometry":
        return geometry_keypoints(canonical_mesh)

    def orbit_renders(image_size: int, frames) -> ViewSet:
        return render_orbit(canonical_mesh, image_size=image_size, frames=list(frames))

    keypoints, adjacency = network_keypoints(options.checkpoint, orbit_renders, options.device)
    if source == "snapped":
        return snap_to_curve_skeleton(keypoints, canonical_mesh), adjacency
    return pull_inside(keypoints, canonical_mesh), adjacency
