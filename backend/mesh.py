"""The triangle mesh that flows through rigging, skinning and export.

Arrays, not a trimesh object, cross module boundaries so the Blender side and the glTF writer see the same
plain data; `validate()` is called at every entry point so bad geometry fails early with a clear code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .errors import KeyDiffError


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray                 # [V, 3] float64, object space
    faces: np.ndarray                    # [F, 3] int64, counter-clockwise seen from outside
    normals: np.ndarray | None = None    # [V, 3] float32, unit length
    colors: np.ndarray | None = None     # [V, 4] float32 in [0, 1], linear RGBA
    uvs: np.ndarray | None = None        # [V, 2] float32, glTF convention (v down from the top)
    texture: np.ndarray | None = None    # [H, W, 3|4] uint8 base-colour image, sRGB

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    def validate(self) -> "Mesh":
        """Return self if usable, else raise KeyDiffError('invalid_mesh') naming the problem."""
        v, f = self.vertices, self.faces
        if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
            raise KeyDiffError("invalid_mesh", f"vertices must have shape (V, 3) with V > 0, got {v.shape}")
        if not np.isfinite(v).all():
            bad = int((~np.isfinite(v).all(axis=1)).sum())
            raise KeyDiffError("invalid_mesh", f"{bad} vertices have NaN or infinite coordinates")
        if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
            raise KeyDiffError("invalid_mesh", f"the mesh has no triangle faces (faces shape {f.shape})")
        if f.min() < 0 or f.max() >= v.shape[0]:
            raise KeyDiffError(
                "invalid_mesh", f"face indices must lie in [0, {v.shape[0] - 1}], got [{f.min()}, {f.max()}]"
            )
        for name, arr, width in (("normals", self.normals, 3), ("colors", self.colors, 4), ("uvs", self.uvs, 2)):
            if arr is not None and arr.shape != (v.shape[0], width):
                raise KeyDiffError("invalid_mesh", f"{name} must have shape ({v.shape[0]}, {width}), got {arr.shape}")
        return self

    def with_normals(self) -> "Mesh":
        """Area-weighted vertex normals, computed only when missing."""
        if self.normals is not None:
            return self
        v, f = self.vertices, self.faces
        face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # length = 2 * area
        vert_n = np.zeros_like(v)
        for corner in range(3):
            np.add.at(vert_n, f[:, corner], face_n)
        length = np.linalg.norm(vert_n, axis=1, keepdims=True)
        vert_n = np.where(length > 0, vert_n / np.maximum(length, 1e-30), np.array([0.0, 0.0, 1.0]))
        return replace(self, normals=vert_n.astype(np.float32))

    def transformed(self, matrix: np.ndarray) -> "Mesh":
        """Apply a 4x4 similarity transform (normals rotated, not scaled)."""
        v = self.vertices @ matrix[:3, :3].T + matrix[:3, 3]
        normals = None
        if self.normals is not None:
            n = self.normals @ matrix[:3, :3].T
            normals = (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)).astype(np.float32)
        return replace(self, vertices=v, normals=normals)

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)
