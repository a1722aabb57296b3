"""CPU orbit renderer: a Mesh seen by our cameras as a ViewSet (RGB on white, mask, depth).

Mesh input and synthetic training data need the same 21 views SV3D would give, without a GPU. Visibility is
ray casting with Intel Embree (through trimesh + the `embreex` wheel), one ray per pixel centre (continuous
pixel convention of backend.cameras); everything after the hit (barycentrics, normals, colours, texture
lookups, shading) is vectorised numpy.

Shading: Lambert with a headlight (light from the camera) plus ambient, computed on linear albedo and
written as sRGB, two-sided so meshes with flipped faces still look solid. Albedo is the vertex colour times
the base-colour texture (as in glTF); grey when neither is present. Texture alpha is ignored.
Anti-aliasing: optional supersampling (`RenderSettings.supersample`, s x s rays per pixel, box filter);
the mask then marks pixels covered by at least half of their samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..cameras import ORBIT_FRAMES, Camera, orbit_cameras, pixel_rays
from ..errors import KeyDiffError
from ..mesh import Mesh
from .viewset import NOT_ON_ORBIT, ViewSet

MIN_SIZE, MAX_SIZE = 16, 2048


@dataclass(frozen=True)
class RenderSettings:
    ambient: float = 0.3
    diffuse: float = 0.7                           # ambient + diffuse = 1: a face seen head-on shows its albedo
    base_color: tuple[float, float, float] = (0.6, 0.6, 0.6)   # linear albedo when the mesh has no colour
    supersample: int = 1                           # s x s rays per pixel; 1 = no anti-aliasing


def has_embree() -> bool:
    """True when the fast ray engine (`embreex`) is importable."""
    try:
        import embreex  # noqa: F401
    except ImportError:
        return False
    return True


def render_orbit(mesh: Mesh, image_size: int = 256, frames: Sequence[int] | None = None,
                 settings: RenderSettings = RenderSettings(), **orbit_kwargs) -> ViewSet:
    """Render the SV3D-p orbit (all 21 frames, or `frames`); `orbit_kwargs` go to `orbit_cameras`."""
    frames = list(range(ORBIT_FRAMES)) if frames is None else [int(f) for f in frames]
    cameras = orbit_cameras(image_size=image_size, frames=frames, **orbit_kwargs)
    return render_views(mesh, cameras, frames=frames, settings=settings)


def render_views(mesh: Mesh, cameras: Sequence[Camera], frames: Sequence[int] | None = None,
                 settings: RenderSettings = RenderSettings()) -> ViewSet:
    """Render `mesh` from each camera; `frames` labels the views' orbit frames (default: off the orbit)."""
    mesh = mesh.validate().with_normals()
    if len(cameras) == 0:
        raise KeyDiffError("invalid_argument", "need at least one camera to render, got 0")
    sizes = sorted({(cam.width, cam.height) for cam in cameras})
    if len(sizes) != 1:
        raise KeyDiffError("invalid_argument", f"a ViewSet holds one image size; cameras have sizes {sizes}")
    for cam in cameras:
        if not (MIN_SIZE <= cam.width <= MAX_SIZE and MIN_SIZE <= cam.height <= MAX_SIZE):
            raise KeyDiffError("invalid_argument", f"image size must lie in [{MIN_SIZE}, {MAX_SIZE}] px, got "
                                                   f"{cam.width}x{cam.height}")
    if int(settings.supersample) != settings.supersample or not 1 <= settings.supersample <= 4:
        raise KeyDiffError("invalid_argument", f"supersample must be 1..4, got {settings.supersample}")
    if max(sizes[0]) * settings.supersample > MAX_SIZE:
        raise KeyDiffError("invalid_argument", f"image size x supersample must be <= {MAX_SIZE} rays per side, got "
                                               f"{max(sizes[0])} x {settings.supersample}")
    if not has_embree():
        raise KeyDiffError("missing_dependency", "the mesh renderer needs the ray engine: pip install 'embreex>=4.3'")
    intersector = _intersector(mesh)
    albedo_fn = _albedo_sampler(mesh, settings)
    images, masks, depths = [], [], []
    for cam in cameras:
        image, mask, depth = _render_one(mesh, cam, intersector, albedo_fn, settings)
        images.append(image)
        masks.append(mask)
        depths.append(depth)
    frames = [NOT_ON_ORBIT] * len(cameras) if frames is None else list(frames)
    return ViewSet(images=np.stack(images), masks=np.stack(masks), cameras=list(cameras),
                   frames=np.asarray(frames), depths=np.stack(depths))


def _intersector(mesh: Mesh):
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    return RayMeshIntersector(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False))


def _render_one(mesh: Mesh, camera: Camera, intersector, albedo_fn, settings: RenderSettings):
    s = int(settings.supersample)
    fine = camera if s == 1 else Camera(R=camera.R, t=camera.t, K=np.diag([s, s, 1.0]) @ camera.K,
                                        width=camera.width * s, height=camera.height * s)
    origin, dirs = pixel_rays(fine)                                   # [3], [Hs, Ws, 3]
    dirs = dirs.reshape(-1, 3)                                        # [R, 3]
    face = intersector.intersects_first(np.broadcast_to(origin, dirs.shape), dirs)  # [R], -1 = miss
    hit = face >= 0
    hit_face = face[hit]
    ray_t, bary = _barycentrics(mesh, hit_face, origin, dirs[hit])    # [h], [h, 3]
    normal = np.einsum("hk,hkc->hc", bary, mesh.normals[mesh.faces[hit_face]])  # [h, 3]
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    lambert = np.abs(np.einsum("hc,hc->h", normal, dirs[hit]))         # headlight, two-sided
    shade = settings.ambient + settings.diffuse * lambert              # [h]
    linear = np.clip(albedo_fn(hit_face, bary) * shade[:, None], 0.0, 1.0)   # [h, 3]

    rgb = np.ones((dirs.shape[0], 3))                                  # white background (linear 1 = sRGB 1)
    rgb[hit] = linear
    depth = np.zeros(dirs.shape[0])
    depth[hit] = ray_t * (dirs[hit] @ camera.R[2])                     # camera z, metres
    height, width = camera.height, camera.width
    if s > 1:
        rgb = rgb.reshape(height, s, width, s, 3).mean(axis=(1, 3)).reshape(-1, 3)
        cover = hit.reshape(height, s, width, s).mean(axis=(1, 3))
        depth_sum = depth.reshape(height, s, width, s).sum(axis=(1, 3))
        hit = (cover >= 0.5).reshape(-1)
        depth = np.where(cover > 0, depth_sum / np.maximum(cover * s * s, 1), 0.0).reshape(-1)
        depth[~hit] = 0.0
    image = np.round(_linear_to_srgb(rgb) * 255.0).astype(np.uint8).reshape(height, width, 3)
    return image, hit.reshape(height, width), depth.astype(np.float32).reshape(height, width)


def _barycentrics(mesh: Mesh, faces: np.ndarray, origin: np.ndarray, dirs: np.ndarray):
    """Ray parameter t [h] and barycentric weights [h, 3] of each ray's hit on its face (Moller-Trumbore)."""
    tri = mesh.vertices[mesh.faces[faces]]                             # [h, 3, 3]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = np.cross(dirs, e2)
    det = np.einsum("hc,hc->h", e1, p)
    inv = 1.0 / np.where(np.abs(det) < 1e-20, 1e-20, det)
    s = origin - tri[:, 0]
    u = np.einsum("hc,hc->h", s, p) * inv
    q = np.cross(s, e1)
    v = np.einsum("hc,hc->h", dirs, q) * inv
    t = np.einsum("hc,hc->h", e2, q) * inv
    # Embree works in float32: clamp the tiny overshoots at edges so interpolation stays convex.
    u, v = np.clip(u, 0.0, 1.0), np.clip(v, 0.0, 1.0)
    over = u + v > 1.0
    total = np.where(over, u + v, 1.0)
    u, v = u / total, v / total
    return t, np.stack([1.0 - u - v, u, v], axis=1)


def _albedo_sampler(mesh: Mesh, settings: RenderSettings):
    """A function (faces [h], bary [h, 3]) -> linear albedo [h, 3] for this mesh's colour sources."""
    colors = None if mesh.colors is None else np.asarray(mesh.colors, dtype=np.float64)[:, :3]
    texture = None
    if mesh.texture is not None and mesh.uvs is not None:
        tex = np.asarray(mesh.texture)
        if tex.ndim != 3 or tex.shape[2] not in (3, 4) or tex.dtype != np.uint8 or min(tex.shape[:2]) < 1:
            raise KeyDiffError("invalid_mesh", f"texture must be uint8 [H, W, 3|4], got {tex.dtype} {tex.shape}")
        texture = _srgb_to_linear(tex[..., :3].astype(np.float64) / 255.0)   # [Ht, Wt, 3]
    base = np.asarray(settings.base_color, dtype=np.float64)

    def sample(faces: np.ndarray, bary: np.ndarray) -> np.ndarray:
        corners = mesh.faces[faces]                                    # [h, 3]
        albedo = np.broadcast_to(base, (len(faces), 3)).copy()
        if colors is not None:
            albedo = np.einsum("hk,hkc->hc", bary, colors[corners])
        if texture is not None:
            uv = np.einsum("hk,hkc->hc", bary, mesh.uvs[corners].astype(np.float64))
            albedo = albedo * _bilinear(texture, uv) if colors is not None else _bilinear(texture, uv)
        return albedo

    return sample


def _bilinear(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup with REPEAT wrapping; uv [h, 2] in glTF convention (v = 0 at the image top)."""
    th, tw = texture.shape[:2]
    x = uv[:, 0] * tw - 0.5                                            # texel centres at (i + 0.5) / size
    y = uv[:, 1] * th - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    x1, y1 = (x0 + 1) % tw, (y0 + 1) % th
    x0, y0 = x0 % tw, y0 % th
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(np.maximum(c, 0.0031308), 1 / 2.4) - 0.055)
