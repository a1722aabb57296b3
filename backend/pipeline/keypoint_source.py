"""Where rig-mesh and rig get their keypoints: a marker file, the trained keypoint network, or the mesh's own
geometry (a curve skeleton, no training: backend/curve_skeleton.py and backend/curve_joints.py).

All return keypoints in the canonical frame plus a K x K edge-weight matrix, so the skeleton, skinning and
export that follow never know which source was used. Network keypoints that land outside the surface (the
soft-argmax of a blurry heatmap can sit in the air between two legs) are pulled into the body.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from ..cameras import CanonicalTransform
from ..curve_joints import curve_joints
from ..curve_skeleton import curve_skeleton
from ..errors import KeyDiffError
from ..mesh import Mesh
from ..views.viewset import ViewSet
from .markers import load_markers

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CHECKPOINT = REPO_ROOT / "checkpoints" / "keypoints_cnn_humanoid_cpu.pt"


def default_checkpoint() -> Path | None:
    """The shipped CPU checkpoint when present in this checkout, else None."""
    return SHIPPED_CHECKPOINT if SHIPPED_CHECKPOINT.is_file() else None


def marker_keypoints(markers_path: str, to_canonical: CanonicalTransform) -> tuple[np.ndarray, np.ndarray]:
    markers = load_markers(markers_path)
    return to_canonical.apply(markers.keypoints), markers.adjacency


def load_network(checkpoint: str | None, device: str = "cpu"):
    """The keypoint network of `checkpoint`, else the shipped one; a clear error when there is none."""
    path = Path(checkpoint) if checkpoint else default_checkpoint()
    if path is None:
        raise KeyDiffError(
            "missing_weights",
            "no keypoint checkpoint: pass --checkpoint FILE (train one with training/train.py) or --markers FILE, "
            "or use --keypoints geometry (no network needed)",
        )
    from ..keypoints.inference import load_keypoint_model   # torch: only when used

    return load_keypoint_model(path, device)


def predict_network(model, views: ViewSet, features_path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [K, 3] (canonical) and adjacency [K, K]; an `sv3d` network reads the SV3D decoder features."""
    from ..keypoints.inference import KeypointInputs, predict_keypoints

    if model.config.backbone != "sv3d":
        return predict_keypoints(model, views)
    if features_path is None:
        raise KeyDiffError("invalid_argument", "this checkpoint reads SV3D features; it rigs photos (`rig`), not meshes")
    import torch

    from ..cameras import projection_matrix
    from ..keypoints.backbones import Sv3dFeatureAdapter
    from ..views.sv3d_features import load_features

    features = load_features(features_path)
    layers = Sv3dFeatureAdapter(model.config.backbone_layers, model.config.layer_channels).load(features_path)
    position = {int(frame): n for n, frame in enumerate(views.frames)}
    projections = np.stack([projection_matrix(views.cameras[position[int(f)]]) for f in features.frames])
    inputs = KeypointInputs(layers, torch.as_tensor(projections, dtype=torch.float32), tuple(views.images.shape[1:3]))
    return predict_keypoints(model, inputs)


def network_keypoints(checkpoint: str | None, views_for_model, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [K, 3] (canonical) and adjacency [K, K] predicted from views of a mesh.

    views_for_model(image_size, frames) -> ViewSet: renders the orbit frames the network reads, at the image
    size it was trained on.
    """
    model = load_network(checkpoint, device)
    return predict_network(model, views_for_model(model.config.backbone_image_size, model.view_indices))


def geometry_keypoints(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [K, 3] at the ends, forks, bends and along the curve skeleton of `mesh`, and its links [K, K]."""
    return curve_joints(curve_skeleton(mesh.vertices, mesh.faces))


def snap_to_curve_skeleton(points: np.ndarray, mesh: Mesh) -> np.ndarray:
    """[K, 3] points moved to the nearest point of the mesh's curve skeleton (network keypoints, kept in the
    middle of the limb they found)."""
    skeleton = curve_skeleton(mesh.vertices, mesh.faces)
    return skeleton.points[cKDTree(skeleton.points).query(points)[1]]


def pull_inside(points: np.ndarray, mesh: Mesh) -> np.ndarray:
    """[K, 3] points; those outside a closed mesh move to the middle of the body at their nearest surface point.

    The middle is found by a ray from the nearest vertex along its inward normal to the opposite wall; a mesh
    that is not closed (no inside to speak of) is left alone.
    """
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    if not tm.is_watertight:
        return points
    outside = ~tm.contains(points)
    if not outside.any():
        return points
    normals = mesh.with_normals().normals.astype(np.float64)
    _, nearest = cKDTree(mesh.vertices).query(points[outside])
    inward = -normals[nearest]
    origins = mesh.vertices[nearest] + inward * 1e-6 * float(np.ptp(mesh.vertices, axis=0).max())
    hits, ray_index, _ = tm.ray.intersects_location(origins, inward, multiple_hits=False)
    depth = np.zeros(len(origins))
    depth[ray_index] = np.linalg.norm(hits - origins[ray_index], axis=1)
    moved = points.copy()
    moved[outside] = origins + inward * (depth / 2.0)[:, None]
    return moved
