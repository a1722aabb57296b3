"""Files the add-on hands to the backend: the mesh to rig (binary PLY) and the marker file. numpy + json only.

PLY keeps the vertex order exactly (the backend loads it with trimesh, process=False), which is what lets the
returned weights map row-for-row onto the user's own vertices.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class MarkerFileError(ValueError):
    """A marker file the backend would reject; the message names the file and the problem."""


def write_ply(path: Path, vertices: np.ndarray, triangles: np.ndarray) -> None:
    """Binary little-endian PLY: vertices [V, 3] float32, triangles [F, 3] int32."""
    vertices = np.ascontiguousarray(vertices, dtype="<f4")
    faces = np.empty(len(triangles), dtype=[("count", "u1"), ("corners", "<i4", (3,))])
    faces["count"] = 3
    faces["corners"] = triangles
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment KeyDiff3D add-on export\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with open(path, "wb") as stream:
        stream.write(header.encode("ascii"))
        stream.write(vertices.tobytes())
        stream.write(faces.tobytes())


def read_marker_file(path: Path) -> dict:
    """The marker document (keypoints, optional names and edges), checked the way the backend checks it."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MarkerFileError(f"marker file {path} is not readable JSON: {exc}") from exc
    if not isinstance(document, dict) or "keypoints" not in document:
        raise MarkerFileError(f"marker file {path} needs a 'keypoints' list of [x, y, z] points")
    try:
        keypoints = np.asarray(document["keypoints"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MarkerFileError(f"marker file {path}: 'keypoints' must be a list of [x, y, z]") from exc
    if keypoints.ndim != 2 or keypoints.shape[1] != 3 or len(keypoints) < 2 or not np.isfinite(keypoints).all():
        raise MarkerFileError(f"marker file {path}: need at least 2 finite [x, y, z] keypoints, got {keypoints.shape}")
    return {**document, "keypoints": keypoints}


def write_marker_file(path: Path, keypoints: np.ndarray, names=None, edges=None) -> None:
    document: dict = {"keypoints": np.asarray(keypoints, np.float64).tolist()}
    if names is not None:
        document["names"] = [str(n) for n in names]
    if edges is not None:
        document["edges"] = [[int(i), int(j)] for i, j in edges]
    Path(path).write_text(json.dumps(document), encoding="utf-8")


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """[N, 3] points through a 4x4 affine matrix."""
    matrix = np.asarray(matrix, np.float64)
    return np.asarray(points, np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
