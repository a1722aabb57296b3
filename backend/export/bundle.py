"""The result bundle (DESIGN.md): the one folder the add-on and other tools read.

    rig.json     format + version, joints, parents, names, bones, keypoints, adjacency, the canonical transform,
                 units and the settings that produced it
    mesh.glb     the mesh (vertex order = weights.npz rows), colours or texture when known
    weights.npz  sparse skin weights: indices [V, k] int32, weights [V, k] float32, bone_names [B]
    rigged.glb   the complete skinned glTF 2.0 for game engines and other DCC tools
    ...          optional extras (views/, preview.png, gaussians.ply + binding.npz) written by callers

Everything is written into a hidden sibling folder first and renamed into place, so a failed or killed run
never leaves a half bundle where the user asked for one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import trimesh
from PIL import Image

from .. import __version__
from ..atomic import atomic_output_folder, check_replaceable
from ..errors import KeyDiffError
from ..mesh import Mesh
from ..rig import Rig, SkinWeights
from .axes import WORLD_TO_GLTF

BUNDLE_FORMAT = "keydiff3d-rig"
BUNDLE_VERSION = 1
RIG_FILE, MESH_FILE, WEIGHTS_FILE, RIGGED_FILE = "rig.json", "mesh.glb", "weights.npz", "rigged.glb"


@dataclass(frozen=True)
class RigResult:
    """Everything one rigging run produced, in the mesh's own (object) coordinates."""

    mesh: Mesh
    rig: Rig
    weights: SkinWeights
    canonical_to_object: np.ndarray = field(default_factory=lambda: np.eye(4))  # [4, 4] similarity
    keypoints: np.ndarray | None = None          # [K, 3] raw predicted keypoints, object space
    adjacency: np.ndarray | None = None          # [K, K] predicted edge weights
    keypoint_to_joint: np.ndarray | None = None  # [K] joint each keypoint was merged into
    settings: dict = field(default_factory=dict)
    units: str = "metres"


def rig_document(result: RigResult) -> dict:
    """The JSON content of rig.json."""
    rig = result.rig
    bones = [
        {
            "name": rig.bone_names[b],
            "head": rig.bone_heads[b].tolist(),
            "tail": rig.bone_tails[b].tolist(),
            "parent": int(rig.bone_parents[b]),
            "deform": bool(rig.bone_deforms[b]),
        }
        for b in range(rig.num_bones)
    ]
    optional = lambda a: None if a is None else np.asarray(a).tolist()  # noqa: E731
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "generator": f"keydiff3d {__version__}",
        "units": result.units,
        "up_axis": "Z",
        "joints": rig.joints.tolist(),
        "parents": rig.parents.tolist(),
        "names": list(rig.names),
        "bones": bones,
        "keypoints": optional(result.keypoints),
        "adjacency": optional(result.adjacency),
        "keypoint_to_joint": optional(result.keypoint_to_joint),
        "canonical_to_object": np.asarray(result.canonical_to_object).tolist(),
        "num_vertices": result.mesh.num_vertices,
        "files": {"mesh": MESH_FILE, "weights": WEIGHTS_FILE, "rigged": RIGGED_FILE},
        "settings": result.settings,
    }


def write_bundle(
    out_dir: str | os.PathLike,
    result: RigResult,
    *,
    extras: Callable[[Path], None] | None = None,
) -> Path:
    """Write the bundle atomically; `extras(tmp_dir)` may add optional files before the rename."""
    out_dir = Path(out_dir).expanduser().absolute()
    result.mesh.validate()
    if result.weights.num_vertices != result.mesh.num_vertices:
        raise KeyDiffError(
            "invalid_argument",
            f"weights cover {result.weights.num_vertices} vertices but the mesh has {result.mesh.num_vertices}",
        )
    with atomic_output_folder(out_dir, marker=RIG_FILE, what="KeyDiff3D bundle") as staging:
        (staging / RIG_FILE).write_text(json.dumps(rig_document(result), indent=1, sort_keys=True))
        np.savez_compressed(
            staging / WEIGHTS_FILE,
            indices=result.weights.indices.astype(np.int32),
            weights=result.weights.weights.astype(np.float32),
            bone_names=np.asarray(result.rig.bone_names),
        )
        write_mesh_glb(staging / MESH_FILE, result.mesh)
        from .gltf_writer import write_rigged_gltf  # heavy-ish; only needed here

        write_rigged_gltf(staging / RIGGED_FILE, result.mesh, result.rig, result.weights)
        if extras is not None:
            extras(staging)
    return out_dir


def write_mesh_glb(path: Path, mesh: Mesh) -> None:
    """Plain (unskinned) mesh in glTF axes, vertex order kept so weights.npz rows still match."""
    vertices = mesh.vertices @ WORLD_TO_GLTF[:3, :3].T
    visual = None
    if mesh.uvs is not None and mesh.texture is not None:
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(mesh.texture))
        visual = trimesh.visual.TextureVisuals(uv=_uv_to_trimesh(mesh.uvs), material=material)
    elif mesh.colors is not None:
        visual = trimesh.visual.ColorVisuals(vertex_colors=_to_unorm8(mesh.colors))
    normals = None if mesh.normals is None else mesh.normals @ WORLD_TO_GLTF[:3, :3].T
    tm = trimesh.Trimesh(vertices, mesh.faces, vertex_normals=normals, visual=visual, process=False)
    tm.export(path, file_type="glb")


def read_bundle_weights(bundle_dir: str | os.PathLike) -> SkinWeights:
    data = np.load(Path(bundle_dir) / WEIGHTS_FILE)
    return SkinWeights(data["indices"], data["weights"], len(data["bone_names"]))


def read_rig_document(bundle_dir: str | os.PathLike) -> dict:
    path = Path(bundle_dir) / RIG_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KeyDiffError("unreadable_file", f"{path} is not a readable rig.json: {exc}") from exc
    if doc.get("format") != BUNDLE_FORMAT or doc.get("version", 0) > BUNDLE_VERSION:
        raise KeyDiffError(
            "unreadable_file",
            f"{path} has format {doc.get('format')!r} version {doc.get('version')!r}; "
            f"this build reads {BUNDLE_FORMAT!r} up to version {BUNDLE_VERSION}",
        )
    return doc


def rig_from_document(doc: dict) -> Rig:
    bones = doc["bones"]
    return Rig(
        np.asarray(doc["joints"]),
        np.asarray(doc["parents"]),
        tuple(doc["names"]),
        tuple(b["name"] for b in bones),
        np.asarray([b["deform"] for b in bones], bool),
    )


def check_bundle_destination(out_dir: str | os.PathLike) -> None:
    """Fail early (before minutes of work) when `out_dir` could not take a bundle."""
    check_replaceable(Path(out_dir).expanduser().absolute(), RIG_FILE, "KeyDiff3D bundle")


def _to_unorm8(colors: np.ndarray) -> np.ndarray:
    """Linear RGBA floats -> normalised uint8; glTF's COLOR_0 is linear, so no sRGB curve is applied."""
    return np.round(np.clip(colors, 0.0, 1.0) * 255).astype(np.uint8)


def _uv_to_trimesh(uvs: np.ndarray) -> np.ndarray:
    """glTF's v runs down from the top; trimesh's runs up from the bottom."""
    return np.column_stack([uvs[:, 0], 1.0 - uvs[:, 1]])
