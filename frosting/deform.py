"""Move frosting Gaussians with a posed mesh: the binding (what to keep) and `deform` (how to re-pose).

Posing is linear blend skinning of the base-mesh vertices only (backend.posing); the Gaussians follow:
centres are recomputed from the posed prisms (so each stays inside its prism), the layer thickness and
the Gaussian scales are multiplied by the median change of triangle size (Frosting's 'median' rescaling),
and rotations get the change of their face's frame (Frosting's 'simple' mode). SH are not rotated, as in
the original code.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.errors import KeyDiffError

from .layer import FrostedGaussians, vertex_normals
from .render.projection import quat_to_rotmat

BINDING_FORMAT = "keydiff3d.frosting_binding"
BINDING_VERSION = 1


@dataclass(frozen=True)
class Binding:
    rest_vertices: np.ndarray   # [V, 3]
    faces: np.ndarray           # [F, 3]
    inner: np.ndarray           # [V]
    outer: np.ndarray           # [V]
    cells: np.ndarray           # [M] face of each Gaussian
    bary_logits: np.ndarray     # [M, 6]
    quats: np.ndarray           # [M, 4] wxyz at rest
    log_scales: np.ndarray      # [M, 3] at rest


@dataclass(frozen=True)
class PosedGaussians:
    means: np.ndarray           # [M, 3]
    quats: np.ndarray           # [M, 4] wxyz
    scales: np.ndarray          # [M, 3]
    prisms: np.ndarray          # [F, 6, 3] posed prism vertices


def binding_from_layer(layer: FrostedGaussians) -> Binding:
    f = lambda t: t.detach().cpu().numpy()
    return Binding(f(layer.vertices).astype(np.float64), f(layer.faces).astype(np.int64), f(layer.inner),
                   f(layer.outer), f(layer.cells).astype(np.int64), f(layer.bary_logits), f(layer.quats),
                   f(layer.log_scales))


def save_binding(binding: Binding, path: str | Path) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    np.savez_compressed(tmp, format=np.array(BINDING_FORMAT), version=np.array(BINDING_VERSION),
                        **{k: getattr(binding, k) for k in Binding.__dataclass_fields__})
    os.replace(tmp, path)
    return path


def load_binding(path: str | Path) -> Binding:
    try:
        with np.load(path) as data:
            if str(data["format"]) != BINDING_FORMAT or int(data["version"]) != BINDING_VERSION:
                raise KeyDiffError("unreadable_file", f"{path} is not {BINDING_FORMAT} v{BINDING_VERSION}")
            return Binding(**{k: data[k] for k in Binding.__dataclass_fields__})
    except (OSError, KeyError, ValueError) as exc:
        raise KeyDiffError("unreadable_file", f"{path} is missing or not a frosting binding: {exc}") from exc


def _face_frames(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[F, 3, 3] orthonormal frames with columns (normal, edge v0→v1, normal × edge)."""
    tri = verts[faces]
    n = torch.nn.functional.normalize(torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1), dim=-1)
    e = torch.nn.functional.normalize(tri[:, 1] - tri[:, 0], dim=-1)
    return torch.stack([n, e, torch.cross(n, e, dim=-1)], dim=-1)


def _median_size(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    tri = verts[faces]
    return (tri - tri.mean(1, keepdim=True)).norm(dim=-1).median()


def _rotmat_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> unit wxyz quaternions (via scipy: robust in every branch)."""
    from scipy.spatial.transform import Rotation
    xyzw = Rotation.from_matrix(m.reshape(-1, 3, 3).double().numpy()).as_quat()
    return torch.from_numpy(xyzw[:, [3, 0, 1, 2]]).to(m.dtype).reshape(m.shape[:-2] + (4,))


def deform(binding: Binding, posed_vertices: np.ndarray) -> PosedGaussians:
    """Gaussians of `binding` for the base mesh moved to `posed_vertices` [V, 3] (same topology)."""
    posed = np.asarray(posed_vertices, dtype=np.float64)
    if posed.shape != binding.rest_vertices.shape or not np.isfinite(posed).all():
        raise KeyDiffError("invalid_mesh", f"posed vertices must be finite with shape "
                           f"{binding.rest_vertices.shape} (the bound mesh), got {posed.shape}")
    faces = torch.from_numpy(binding.faces)
    rest = torch.from_numpy(binding.rest_vertices)
    v = torch.from_numpy(posed)
    ratio = _median_size(v, faces) / _median_size(rest, faces).clamp_min(1e-12)
    inner = torch.from_numpy(binding.inner).double() * ratio
    outer = torch.from_numpy(binding.outer).double() * ratio
    n = vertex_normals(v, faces)
    prisms = torch.cat([(v - inner[:, None] * n)[faces], (v + outer[:, None] * n)[faces]], dim=1)   # [F, 6, 3]
    cells = torch.from_numpy(binding.cells)
    weights = torch.softmax(torch.from_numpy(binding.bary_logits).double(), dim=-1)
    means = torch.einsum("mk,mki->mi", weights, prisms[cells])
    delta = _face_frames(v, faces) @ _face_frames(rest, faces).transpose(1, 2)                  # [F, 3, 3]
    rot = delta[cells] @ quat_to_rotmat(torch.from_numpy(binding.quats).double())
    scales = np.exp(binding.log_scales.astype(np.float64)) * float(ratio)
    return PosedGaussians(means.numpy(), _rotmat_to_quat(rot).numpy(), scales, prisms.numpy())
