"""The one camera convention of the project (DESIGN.md "One convention for space").

Every module that places a camera, projects a keypoint or lifts a pixel goes through here, so that the SV3D
views, our mesh renders, the keypoint volume, frosting and the Blender side all agree on where "front" is.

World frame
    Blender's: right-handed, Z up, metres. The object sits at the origin inside the cube [-s, s]^3
    (s = `DEFAULT_HALF_SIZE` = 0.6); the keypoint volume spans exactly that cube.

Orbit (SV3D-p, sgm `simple_video_sample.py`)
    21 frames at one elevation (default 10 deg, polar = 90 - elevation). Frame i (i = 0..19) sits at azimuth
    360/21 * (i + 1) deg; frame 20 sits at azimuth 0, the input view. Azimuth 0 looks at the object from -Y, so
    the object faces Blender's front view (numpad 1). Azimuth turns with `AZIMUTH_SENSE`: +1 means
    counter-clockwise seen from +Z, i.e. from -Y towards +X (the camera walks to the object's left side).
    Which sense SV3D itself uses is not documented; the SV3D path checks it, and only this constant changes.

Cameras
    OpenCV world-to-camera rotation R and translation t (x right, y down, +z forward), pixel intrinsics K,
    P = K [R | t]. Pixel coordinates are continuous: the image spans [0, W] x [0, H] and the centre of pixel
    (row i, col j) is (u, v) = (j + 0.5, i + 0.5), as in gsplat. The field of view spans the *larger* image side
    (Blender's sensor fit AUTO); SV3D images are square, so there the horizontal and vertical FOV are equal
    (33.8 deg, the value Stability AI gave for SV3D; which axis it meant does not matter for square images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import KeyDiffError

AZIMUTH_SENSE: int = +1             # +1: counter-clockwise seen from +Z (-Y -> +X); -1: clockwise
ORBIT_FRAMES: int = 21              # SV3D-p video length
INPUT_FRAME: int = 20               # the orbit frame that is the conditioning (input) view, azimuth 0
DEFAULT_ELEVATION_DEG: float = 10.0
DEFAULT_FOV_DEG: float = 33.8
DEFAULT_RADIUS: float = 2.0         # no authoritative value for SV3D; what users use
DEFAULT_IMAGE_SIZE: int = 576       # SV3D's training resolution
DEFAULT_HALF_SIZE: float = 0.6      # half-size of the canonical cube (and of the keypoint volume)
BLENDER_SENSOR_MM: float = 36.0     # Blender's default camera sensor width


def _invalid(message: str) -> KeyDiffError:
    return KeyDiffError("invalid_argument", message)


def _as_array(value, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    """float64 array with the given trailing shape and finite values, else a KeyDiffError naming `name`."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _invalid(f"{name} must be numeric, got {type(value).__name__}") from exc
    tail = arr.shape[arr.ndim - len(shape_tail):] if arr.ndim >= len(shape_tail) else None
    if tail != shape_tail:
        want = ", ".join(["..."] + [str(n) for n in shape_tail])
        raise _invalid(f"{name} must have shape ({want}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise _invalid(f"{name} contains NaN or infinite values")
    return arr


def _vec3(value, name: str) -> np.ndarray:
    arr = _as_array(value, (3,), name)
    if arr.shape != (3,):
        raise _invalid(f"{name} must be one 3-vector, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera in the OpenCV convention: x_cam = R @ x_world + t, pixel ~ K @ x_cam."""

    R: np.ndarray       # [3, 3] float64, world-to-camera rotation (rows: camera x right, y down, z forward)
    t: np.ndarray       # [3] float64, world-to-camera translation
    K: np.ndarray       # [3, 3] float64, pixel intrinsics
    width: int
    height: int

    def __post_init__(self) -> None:
        R = _as_array(self.R, (3, 3), "R")
        t = _as_array(self.t, (3,), "t")
        K = _as_array(self.K, (3, 3), "K")
        if R.shape != (3, 3) or t.shape != (3,) or K.shape != (3, 3):
            raise _invalid(f"camera R, t, K must be [3,3], [3], [3,3], got {R.shape}, {t.shape}, {K.shape}")
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise _invalid("camera R must be a rotation matrix (orthonormal, det +1)")
        if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0.0, 0.0, 1.0]):
            raise _invalid(f"camera K must have positive focal lengths and last row [0, 0, 1], got {K.tolist()}")
        if int(self.width) != self.width or int(self.height) != self.height or self.width < 1 or self.height < 1:
            raise _invalid(f"image size must be positive integers, got {self.width}x{self.height}")
        for name, arr in (("R", R), ("t", t), ("K", K)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, [3]."""
        return -self.R.T @ self.t

    @property
    def forward(self) -> np.ndarray:
        """Unit viewing direction in world coordinates (camera +z), [3]."""
        return self.R[2].copy()

    @property
    def fov_deg(self) -> float:
        """Field of view across the larger image side (Blender's sensor fit AUTO)."""
        if self.width >= self.height:
            return math.degrees(2.0 * math.atan(self.width / (2.0 * self.K[0, 0])))
        return math.degrees(2.0 * math.atan(self.height / (2.0 * self.K[1, 1])))

    def to_dict(self) -> dict:
        """Plain JSON-able form (used by ViewSet's cameras.json and the bundle)."""
        return {"R": self.R.tolist(), "t": self.t.tolist(), "K": self.K.tolist(),
                "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, data: dict) -> "Camera":
        try:
            return cls(R=data["R"], t=data["t"], K=data["K"], width=data["width"], height=data["height"])
        except (KeyError, TypeError) as exc:
            raise _invalid(f"a camera needs keys R, t, K, width, height; got {sorted(data)}") from exc


@dataclass(frozen=True, eq=False)
class CameraBatch:
    """Many cameras as stacked arrays, the form torch code and vectorised numpy code want."""

    R: np.ndarray       # [N, 3, 3]
    t: np.ndarray       # [N, 3]
    K: np.ndarray       # [N, 3, 3]
    width: int
    height: int

    @property
    def projection(self) -> np.ndarray:
        """P = K [R | t], [N, 3, 4]."""
        return self.K @ np.concatenate([self.R, self.t[:, :, None]], axis=2)

    @property
    def centers(self) -> np.ndarray:
        """Camera centres in world coordinates, [N, 3]."""
        return -np.einsum("nji,nj->ni", self.R, self.t)

    @property
    def viewmats(self) -> np.ndarray:
        """World-to-camera 4x4 matrices (gsplat's `viewmats`), [N, 4, 4]."""
        out = np.zeros((len(self.R), 4, 4))
        out[:, :3, :3] = self.R
        out[:, :3, 3] = self.t
        out[:, 3, 3] = 1.0
        return out


def stack_cameras(cameras: Sequence[Camera]) -> CameraBatch:
    """Stack cameras of one image size into arrays (e.g. `torch.from_numpy(batch.R)`)."""
    if len(cameras) == 0:
        raise _invalid("need at least one camera to stack, got 0")
    sizes = {(c.width, c.height) for c in cameras}
    if len(sizes) != 1:
        raise _invalid(f"all stacked cameras must share one image size, got {sorted(sizes)}")
    return CameraBatch(R=np.stack([c.R for c in cameras]), t=np.stack([c.t for c in cameras]),
                       K=np.stack([c.K for c in cameras]), width=cameras[0].width, height=cameras[0].height)


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """K [3, 3] with square pixels, principal point at the image centre and `fov_deg` across the larger side."""
    if not (0.0 < fov_deg < 180.0):
        raise _invalid(f"fov_deg must lie in (0, 180), got {fov_deg}")
    if width < 1 or height < 1:
        raise _invalid(f"image size must be positive, got {width}x{height}")
    focal = max(width, height) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def look_at_camera(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0), fov_deg: float = DEFAULT_FOV_DEG,
                   width: int = DEFAULT_IMAGE_SIZE, height: int | None = None) -> Camera:
    """A camera at `eye` looking at `target`, with world `up` pointing up in the image (camera -y)."""
    eye, target, up = (_vec3(value, name) for value, name in ((eye, "eye"), (target, "target"), (up, "up")))
    forward = target - eye
    if np.linalg.norm(forward) < 1e-12:
        raise _invalid(f"eye and target must differ, both are {eye.tolist()}")
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:
        raise _invalid(f"up {up.tolist()} must not be parallel to the viewing direction {forward.tolist()}")
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    height = width if height is None else height
    return Camera(R=R, t=-R @ eye, K=intrinsics(fov_deg, width, height), width=width, height=height)


def orbit_azimuths_deg(num_frames: int = ORBIT_FRAMES) -> np.ndarray:
    """SV3D-p azimuths [num_frames]: frame i < last at 360/n * (i + 1), the last frame (input view) at 0."""
    if num_frames < 1:
        raise _invalid(f"num_frames must be >= 1, got {num_frames}")
    return (360.0 / num_frames * (np.arange(num_frames) + 1.0)) % 360.0


def orbit_center(azimuth_deg, elevation_deg, radius: float) -> np.ndarray:
    """World position(s) [..., 3] of an orbit camera; azimuth 0 is on -Y, turning with AZIMUTH_SENSE."""
    az = np.radians(np.asarray(azimuth_deg, dtype=np.float64)) * AZIMUTH_SENSE
    el = np.radians(np.asarray(elevation_deg, dtype=np.float64))
    az, el = np.broadcast_arrays(az, el)
    return radius * np.stack([np.cos(el) * np.sin(az), -np.cos(el) * np.cos(az), np.sin(el)], axis=-1)


def orbit_cameras(image_size: int = DEFAULT_IMAGE_SIZE, radius: float = DEFAULT_RADIUS,
                  elevation_deg: float = DEFAULT_ELEVATION_DEG, fov_deg: float = DEFAULT_FOV_DEG,
                  frames: Sequence[int] | None = None) -> list[Camera]:
    """The SV3D-p orbit cameras looking at the origin, Z up; `frames` picks orbit frames (default all 21)."""
    if not (math.isfinite(radius) and radius > 0):
        raise _invalid(f"radius must be a positive number of metres, got {radius}")
    if not (math.isfinite(elevation_deg) and -90.0 < elevation_deg < 90.0):
        raise _invalid(f"elevation_deg must lie in (-90, 90), got {elevation_deg}")
    if int(image_size) != image_size or image_size < 1:
        raise _invalid(f"image_size must be a positive integer, got {image_size}")
    frames = list(range(ORBIT_FRAMES)) if frames is None else [int(f) for f in frames]
    bad = [f for f in frames if not 0 <= f < ORBIT_FRAMES]
    if bad:
        raise _invalid(f"orbit frames must lie in [0, {ORBIT_FRAMES - 1}], got {bad}")
    azimuths = orbit_azimuths_deg()[frames]
    centers = orbit_center(azimuths, elevation_deg, radius)  # [N, 3]
    return [look_at_camera(c, fov_deg=fov_deg, width=int(image_size)) for c in centers]


def projection_matrix(camera: Camera) -> np.ndarray:
    """P = K [R | t], [3, 4]."""
    return camera.K @ np.concatenate([camera.R, camera.t[:, None]], axis=1)


def project(points, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World points [N, 3] -> pixels [N, 2] (continuous, see module doc) and camera depth z [N] (metres).

    Points behind the camera get depth <= 0 and meaningless pixels; callers that care test `depth > 0`.
    """
    pts = _as_array(points, (3,), "points").reshape(-1, 3)
    cam = pts @ camera.R.T + camera.t                   # [N, 3]
    depth = cam[:, 2]
    safe = np.where(np.abs(depth) < 1e-12, 1e-12, depth)
    pixels = (cam[:, :2] / safe[:, None]) @ camera.K[:2, :2].T + camera.K[:2, 2]
    return pixels, depth


def unproject(pixels, depth, camera: Camera) -> np.ndarray:
    """Pixels [N, 2] at camera depth z [N] -> world points [N, 3]; the inverse of `project`."""
    pix = _as_array(pixels, (2,), "pixels").reshape(-1, 2)
    z = _as_array(depth, (), "depth").reshape(-1)
    if z.shape[0] != pix.shape[0]:
        raise _invalid(f"depth must have one value per pixel ({pix.shape[0]}), got {z.shape[0]}")
    homog = np.concatenate([pix, np.ones((len(pix), 1))], axis=1)     # [N, 3]
    cam = (homog @ np.linalg.inv(camera.K).T) * z[:, None]            # [N, 3] camera space
    return (cam - camera.t) @ camera.R                                 # R^T (x - t)


def pixel_rays(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Ray through every pixel centre: origin [3] and unit directions [H, W, 3] in world space."""
    u = np.arange(camera.width) + 0.5
    v = np.arange(camera.height) + 0.5
    uu, vv = np.meshgrid(u, v)                                          # [H, W]
    homog = np.stack([uu, vv, np.ones_like(uu)], axis=-1)              # [H, W, 3]
    dirs = homog @ np.linalg.inv(camera.K).T @ camera.R               # camera -> world: R^T d
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return camera.center, dirs


def triangulate(pixels_per_view, cameras: Sequence[Camera], weights=None) -> np.ndarray:
    """Linear (DLT) least-squares triangulation of N points seen in C views.

    pixels_per_view [C, N, 2]; weights [C, N] (optional, >= 0; 0 drops an observation, e.g. an occluded one).
    Each point needs observations in at least 2 views. Rows are built in normalised camera coordinates
    (K^-1 applied first) so the system is well conditioned for any image size.
    """
    pix = _as_array(pixels_per_view, (2,), "pixels_per_view")
    if pix.ndim != 3 or pix.shape[0] != len(cameras):
        raise _invalid(f"pixels_per_view must have shape ({len(cameras)}, N, 2), got {pix.shape}")
    num_views, num_points = pix.shape[:2]
    w = np.ones((num_views, num_points)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (num_views, num_points) or not np.isfinite(w).all() or (w < 0).any():
        raise _invalid(f"weights must be finite, >= 0, shape ({num_views}, {num_points}), got {w.shape}")
    seen = (w > 0).sum(axis=0)
    if num_points and seen.min() < 2:
        raise _invalid(f"every point needs >= 2 weighted views, point {int(seen.argmin())} has {int(seen.min())}")
    batch = stack_cameras(cameras)
    homog = np.concatenate([pix, np.ones((num_views, num_points, 1))], axis=2)   # [C, N, 3]
    norm = np.einsum("cij,cnj->cni", np.linalg.inv(batch.K), homog)               # [C, N, 3]
    xn, yn = norm[..., 0] / norm[..., 2], norm[..., 1] / norm[..., 2]             # [C, N]
    Rt = np.concatenate([batch.R, batch.t[:, :, None]], axis=2)                   # [C, 3, 4]
    row_x = xn[..., None] * Rt[:, None, 2] - Rt[:, None, 0]                       # [C, N, 4]
    row_y = yn[..., None] * Rt[:, None, 2] - Rt[:, None, 1]                       # [C, N, 4]
    A = np.concatenate([row_x * w[..., None], row_y * w[..., None]], axis=0)      # [2C, N, 4]
    _, _, vt = np.linalg.svd(A.transpose(1, 0, 2))                                # vt [N, 4, 4]
    X = vt[:, -1]                                                                 # [N, 4]
    if (np.abs(X[:, 3]) < 1e-12).any():
        raise _invalid("a point triangulates to infinity (its rays are parallel)")
    return X[:, :3] / X[:, 3:]


def to_gsplat_viewmat(camera: Camera) -> np.ndarray:
    """World-to-camera [4, 4] (OpenCV), exactly what gsplat's `rasterization(viewmats=...)` expects."""
    out = np.eye(4)
    out[:3, :3] = camera.R
    out[:3, 3] = camera.t
    return out


_OPENCV_TO_BLENDER = np.diag([1.0, -1.0, -1.0])   # camera axes: (right, down, forward) -> (right, up, back)


@dataclass(frozen=True, eq=False)
class BlenderCamera:
    """What to set on a Blender camera so it sees what `Camera` sees (sensor fit AUTO, no shift)."""

    matrix_world: np.ndarray     # [4, 4] camera object's world matrix (looks along local -Z, local +Y up)
    lens_mm: float               # bpy camera.data.lens
    sensor_width_mm: float       # bpy camera.data.sensor_width (sensor_fit = 'AUTO')
    resolution_x: int            # scene.render.resolution_x
    resolution_y: int            # scene.render.resolution_y


def to_blender_camera_matrix(camera: Camera) -> np.ndarray:
    """The Blender camera object's world matrix [4, 4] for this camera (no scale)."""
    out = np.eye(4)
    out[:3, :3] = camera.R.T @ _OPENCV_TO_BLENDER
    out[:3, 3] = camera.center
    return out


def to_blender_camera(camera: Camera, sensor_width_mm: float = BLENDER_SENSOR_MM) -> BlenderCamera:
    """Matrix plus lens settings; Blender has no principal-point offset or non-square pixels here, so K must
    be centred with fx == fy (true for every camera this module builds)."""
    K = camera.K
    if not (np.isclose(K[0, 0], K[1, 1]) and np.isclose(K[0, 2], camera.width / 2)
            and np.isclose(K[1, 2], camera.height / 2) and abs(K[0, 1]) < 1e-9):
        raise _invalid(f"Blender export needs centred square-pixel intrinsics, got K={K.tolist()}")
    lens = sensor_width_mm * K[0, 0] / max(camera.width, camera.height)
    return BlenderCamera(matrix_world=to_blender_camera_matrix(camera), lens_mm=float(lens),
                         sensor_width_mm=float(sensor_width_mm), resolution_x=camera.width,
                         resolution_y=camera.height)


def from_blender_camera_matrix(matrix_world, lens_mm: float = 50.0, sensor_width_mm: float = BLENDER_SENSOR_MM,
                               width: int = DEFAULT_IMAGE_SIZE, height: int | None = None) -> Camera:
    """A Blender camera (world matrix, lens, AUTO-fit sensor width, resolution) as our OpenCV `Camera`.

    Scale in the matrix is removed (Blender cameras ignore it); a mirrored matrix is rejected.
    """
    M = _as_array(matrix_world, (4, 4), "matrix_world").reshape(4, 4)
    height = width if height is None else height
    if lens_mm <= 0 or sensor_width_mm <= 0:
        raise _invalid(f"lens_mm and sensor_width_mm must be positive, got {lens_mm}, {sensor_width_mm}")
    axes = M[:3, :3]
    scale = np.linalg.norm(axes, axis=0)
    if (scale < 1e-12).any():
        raise _invalid(f"matrix_world has a zero-length axis (scale {scale.tolist()})")
    rot = axes / scale
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-5) or np.linalg.det(rot) < 0:
        raise _invalid("matrix_world must be a rotation (+ uniform or axis scale) and translation, not sheared")
    R = (rot @ _OPENCV_TO_BLENDER).T
    focal = lens_mm / sensor_width_mm * max(width, height)
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    return Camera(R=R, t=-R @ M[:3, 3], K=K, width=width, height=height)


@dataclass(frozen=True, eq=False)
class CanonicalTransform:
    """Object space -> canonical cube, a uniform-scale similarity; stored in the bundle as a 4x4 list.

    Rule: the bounding-box centre goes to the origin and the longest bounding-box side spans
    2 * half_size * (1 - margin), so the object fits the cube [-half_size, half_size]^3 and, with margin 0,
    touches it on its longest side. No rotation: the object's own Z stays up and its -Y stays front.
    """

    matrix: np.ndarray    # [4, 4] object -> canonical

    def __post_init__(self) -> None:
        M = _as_array(self.matrix, (4, 4), "canonical matrix").reshape(4, 4).copy()
        M.setflags(write=False)
        object.__setattr__(self, "matrix", M)

    @property
    def scale(self) -> float:
        return float(np.cbrt(np.linalg.det(self.matrix[:3, :3])))

    @property
    def inverse(self) -> np.ndarray:
        """Canonical -> object space, [4, 4]."""
        return np.linalg.inv(self.matrix)

    def apply(self, points) -> np.ndarray:
        """Object-space points [N, 3] -> canonical [N, 3]."""
        pts = _as_array(points, (3,), "points").reshape(-1, 3)
        return pts @ self.matrix[:3, :3].T + self.matrix[:3, 3]

    def apply_inverse(self, points) -> np.ndarray:
        """Canonical points [N, 3] (e.g. joints) -> object space [N, 3]."""
        pts = _as_array(points, (3,), "points").reshape(-1, 3)
        inv = self.inverse
        return pts @ inv[:3, :3].T + inv[:3, 3]

    def to_list(self) -> list[list[float]]:
        return self.matrix.tolist()

    @classmethod
    def from_list(cls, rows) -> "CanonicalTransform":
        return cls(np.asarray(rows, dtype=np.float64))


# The farthest point of a canonical object lies at this distance from the origin, so it is seen whole in every
# orbit view: at the default radius 2.0 and FOV 33.8 deg a sphere stays inside the image while its radius is
# below 2.0 * sin(16.9 deg) = 0.581; 0.55 leaves a few pixels of white border. Inside the keypoint cube too.
DEFAULT_FIT_RADIUS: float = 0.55


def canonical_transform(vertices, half_size: float = DEFAULT_HALF_SIZE, margin: float = 0.0,
                        fit: str = "sphere") -> CanonicalTransform:
    """The similarity that centres `vertices` [V, 3] on its bounding box and scales it into the canonical frame.

    fit="sphere" (the default, used by rig-mesh and by the synthetic training data alike so the network sees one
    scale): the farthest vertex from the bounding-box centre lands at min(half_size, DEFAULT_FIT_RADIUS) *
    (1 - margin), so the object is inside the cube AND seen whole from every orbit camera.
    fit="box": the longest bounding-box side spans 2 * half_size * (1 - margin) (touches the cube; the orbit
    views may clip a corner).
    """
    v = _as_array(vertices, (3,), "vertices").reshape(-1, 3)
    if len(v) == 0:
        raise _invalid("vertices must not be empty")
    if not (half_size > 0 and math.isfinite(half_size)):
        raise _invalid(f"half_size must be positive, got {half_size}")
    if not 0.0 <= margin < 1.0:
        raise _invalid(f"margin must lie in [0, 1), got {margin}")
    if fit not in ("sphere", "box"):
        raise _invalid(f"fit must be 'sphere' or 'box', got {fit!r}")
    lo, hi = v.min(axis=0), v.max(axis=0)
    center = (lo + hi) / 2.0
    if fit == "box":
        extent = float((hi - lo).max())
        target = 2.0 * half_size * (1.0 - margin)
    else:
        extent = float(np.linalg.norm(v - center, axis=1).max())
        target = min(half_size, DEFAULT_FIT_RADIUS) * (1.0 - margin)
    if extent <= 0:
        raise _invalid("vertices span no volume along any axis (all points coincide)")
    scale = target / extent
    M = np.eye(4)
    M[:3, :3] *= scale
    M[:3, 3] = -scale * center
    return CanonicalTransform(M)
