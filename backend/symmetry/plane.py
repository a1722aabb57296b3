"""The mirror plane of a Z-up mesh: which vertical plane, if any, maps its surface onto itself (step 1 of
backend/symmetry: see the package docstring for the measured tolerance)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..errors import KeyDiffError

AXES = ("x", "y")                       # the candidate planes x = c and y = c
DEFAULT_PLANE_TOLERANCE = 0.004         # accept a plane when the surface's mirror excess is under this x diagonal
SURFACE_SAMPLES = 10_000                # per sample set (two sets): ~40 ms; 20,000 moves the excess by < 0.001
LEFT, CENTRE, RIGHT = 1, 0, -1


@dataclass(frozen=True)
class MirrorPlane:
    axis: int          # 0: the plane x = offset, 1: the plane y = offset
    offset: float      # where the plane cuts its axis (frame of the points it was found on)
    excess: float      # the surface's mirror excess (module docstring), x bounding-box diagonal

    @property
    def name(self) -> str:
        return AXES[self.axis]

    def reflect(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] points mirrored across the plane."""
        mirrored = np.array(points, dtype=np.float64, copy=True)
        mirrored[..., self.axis] = 2.0 * self.offset - mirrored[..., self.axis]
        return mirrored

    def side_of(self, points: np.ndarray, tolerance: float) -> np.ndarray:
        """[N] int8: LEFT (+axis), RIGHT (-axis) or CENTRE (within `tolerance` of the plane)."""
        offset = np.asarray(points, np.float64)[..., self.axis] - self.offset
        return np.where(np.abs(offset) <= tolerance, CENTRE, np.sign(offset)).astype(np.int8)

    def transformed(self, matrix: np.ndarray) -> "MirrorPlane":
        """The same plane under a 4x4 similarity without rotation (scale and translation), such as the
        canonical transform's inverse."""
        return MirrorPlane(self.axis, float(matrix[self.axis, self.axis] * self.offset + matrix[self.axis, 3]),
                           self.excess)

    def to_dict(self) -> dict:
        return {"plane": self.name, "offset": round(self.offset, 12), "excess": round(self.excess, 6)}


def plane_excess(vertices: np.ndarray, faces: np.ndarray, *, samples: int = SURFACE_SAMPLES,
                 seed: int = 0) -> np.ndarray:
    """[2] the mirror excess (module docstring) of the planes x = c and y = c through the bounding-box centre."""
    vertices, faces = _check_mesh(vertices, faces)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    centre, diagonal = (lo + hi) / 2.0, float(np.linalg.norm(hi - lo))
    rng = np.random.default_rng(seed)
    first, second = _surface_samples(vertices, faces, samples, rng), _surface_samples(vertices, faces, samples, rng)
    tree = cKDTree(second)
    spacing = float(tree.query(first)[0].mean())                              # sampling noise, no reflection
    excess = []
    for axis in range(len(AXES)):
        mirrored = MirrorPlane(axis, float(centre[axis]), 0.0).reflect(first)
        excess.append(max(float(tree.query(mirrored)[0].mean()) - spacing, 0.0) / diagonal)
    return np.asarray(excess)


def detect_mirror_plane(vertices: np.ndarray, faces: np.ndarray,
                        tolerance: float = DEFAULT_PLANE_TOLERANCE) -> MirrorPlane | None:
    """The vertical mirror plane of a Z-up mesh (vertices [V, 3], faces [F, 3]), or None when neither x = c nor
    y = c (c: the bounding-box centre) mirrors the surface onto itself within `tolerance` x its diagonal.

    When both do (a table, a ball, a spider with legs all round) x wins: Blender's mirror tools mirror across X.
    """
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise KeyDiffError("invalid_argument", f"symmetry tolerance must be a finite number >= 0, got {tolerance}")
    excess = plane_excess(vertices, faces)
    passing = np.flatnonzero(excess <= tolerance)
    if len(passing) == 0:
        return None
    axis = int(passing[0])              # x first: Blender mirrors across X, and a shape with both planes has x
    vertices = np.asarray(vertices, np.float64)
    offset = float((vertices[:, axis].min() + vertices[:, axis].max()) / 2.0)
    return MirrorPlane(axis, offset, float(excess[axis]))


def _surface_samples(vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """[count, 3] points spread over the surface by area (tessellation-independent, unlike the vertices)."""
    corners = vertices[faces]                                                 # [F, 3, 3]
    area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    if not area.sum() > 0:
        raise KeyDiffError("invalid_mesh", f"the mesh's {len(faces)} faces have no area: no surface to mirror")
    chosen = rng.choice(len(faces), count, p=area / area.sum())
    u, v = rng.random((2, count))
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    tri = corners[chosen]                                                     # [count, 3, 3]
    return tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + v[:, None] * (tri[:, 2] - tri[:, 0])


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 3 or not np.isfinite(vertices).all():
        raise KeyDiffError("invalid_mesh", f"vertices must be finite with shape (V >= 3, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise KeyDiffError("invalid_mesh", f"faces must have shape (F > 0, 3), got {faces.shape}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise KeyDiffError("invalid_mesh", f"face indices must lie in [0, {len(vertices) - 1}]")
    return vertices, faces.astype(np.int64)



def onto_plane(point: np.ndarray, plane: MirrorPlane, tolerance: float) -> np.ndarray:
    """[3] `point` moved onto the plane when it is within `tolerance` of it (the floor root of a symmetric
    character, so the root bone mirrors onto itself), else unchanged."""
    point = np.array(point, dtype=np.float64, copy=True)
    if abs(point[plane.axis] - plane.offset) <= tolerance:
        point[plane.axis] = plane.offset
    return point
