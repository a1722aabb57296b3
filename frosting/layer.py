"""Stage 4: the frosting layer — per-vertex inner/outer thickness along the normals and Gaussians bound to
the prism cells it forms (Frosting `Frosting.__init__`).

Convention here: normals point out of the object; a vertex v spans the segment from v - inner·n to
v + outer·n (inner, outer ≥ 0). Cell f is the prism over triangle f with vertices
[inner(v0), inner(v1), inner(v2), outer(v0), outer(v1), outer(v2)]; a Gaussian's centre is the softmax of
its 6 barycentric logits times those vertices, so it can never leave its prism, however the mesh moves.

Thickness: σ_v = mean spread along n of the 4 nearest SuGaR Gaussians; a proposal interval is where the
SuGaR density exceeds 0.01 within ±3σ (21 samples, linear interpolation), smoothed over 4 neighbours;
the final interval repeats the search with the unconstrained stage-1 Gaussians over the proposal widened ×3,
clamped to at least 0.1 × the proposal width, with a floor of 0.001 × scene extent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from backend.mesh import Mesh

from .field import density, gaussian_frames
from .gaussians import GaussianSet
from .knn import knn, mean_neighbour_distance

LEVEL_SAMPLES = 21
PROPOSAL_SIGMAS = 3.0
SMOOTH_NEIGHBOURS = 4
FINAL_RANGE = 3.0
FINAL_CLAMP = 0.1
MIN_SIZE = 0.001


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals [V, 3] (torch, differentiable)."""
    tri = vertices[faces]                                                       # [F, 3, 3]
    face_n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)  # length = 2·area
    acc = torch.zeros_like(vertices).index_add(0, faces.reshape(-1), face_n.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(acc, dim=-1)


@dataclass
class FrostedGaussians:
    """Gaussians bound to a frosting layer; the base mesh and thickness are frozen (`learn_shell=False`)."""

    vertices: Tensor        # [V, 3] base mesh
    faces: Tensor           # [F, 3] long
    inner: Tensor           # [V] ≥ 0, depth of the layer inside the surface
    outer: Tensor           # [V] ≥ 0, height of the layer outside
    cells: Tensor           # [M] long, prism (face) index of each Gaussian
    bary_logits: Tensor     # [M, 6]
    quats: Tensor           # [M, 4] wxyz, world frame of the base mesh
    log_scales: Tensor      # [M, 3]
    opacity_logits: Tensor  # [M]
    sh0: Tensor             # [M, 1, 3]
    shN: Tensor             # [M, K-1, 3]

    def __len__(self) -> int:
        return int(self.cells.shape[0])

    def prisms(self, vertices: Tensor | None = None, inner: Tensor | None = None,
               outer: Tensor | None = None) -> Tensor:
        """[F, 6, 3] prism vertices for the (possibly posed) base vertices."""
        v = self.vertices if vertices is None else vertices
        n = vertex_normals(v, self.faces)
        lo = v - (self.inner if inner is None else inner)[:, None] * n
        hi = v + (self.outer if outer is None else outer)[:, None] * n
        return torch.cat([lo[self.faces], hi[self.faces]], dim=1)

    def centres(self, prisms: Tensor | None = None) -> Tensor:
        """[M, 3] = softmax(bary) · prism vertices of each Gaussian's cell."""
        p = self.prisms() if prisms is None else prisms
        return torch.einsum("mk,mki->mi", torch.softmax(self.bary_logits, dim=-1), p[self.cells])

    def as_gaussian_set(self) -> GaussianSet:
        return GaussianSet(self.centres(), self.quats, self.log_scales, self.opacity_logits, self.sh0, self.shN)


@torch.no_grad()
def crossings(gs: GaussianSet, origins: Tensor, normals: Tensor, lo: Tensor, hi: Tensor, level: float,
              k: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Along origin + t·n, t ∈ [lo, hi] (21 samples): first and last t where d ≥ level, and whether any."""
    rots, scales = gaussian_frames(gs.quats, gs.log_scales)
    steps = torch.linspace(0, 1, LEVEL_SAMPLES, device=origins.device)
    ts = lo[:, None] + (hi - lo)[:, None] * steps[None]                          # [V, S]
    samples = origins[:, None] + ts[..., None] * normals[:, None]                # [V, S, 3]
    nb = knn(gs.means, origins, k)                                               # [V, k]
    d, _, _ = density(samples, nb[:, None].expand(-1, LEVEL_SAMPLES, -1), gs.means, rots, scales, gs.opacities)
    above = d >= level
    found = above.any(1)
    first = torch.argmax(above.int(), 1)
    last = LEVEL_SAMPLES - 1 - torch.argmax(above.flip(1).int(), 1)
    rows = torch.arange(len(origins), device=origins.device)

    def interp(i_out: Tensor, i_in: Tensor) -> Tensor:
        d_out, d_in = d[rows, i_out], d[rows, i_in]
        frac = ((level - d_out) / (d_in - d_out).where((d_in - d_out).abs() > 1e-12, torch.ones_like(d_in)))
        return ts[rows, i_out] + frac.clamp(0, 1) * (ts[rows, i_in] - ts[rows, i_out])

    t_first = torch.where(first > 0, interp((first - 1).clamp_min(0), first), ts[:, 0])
    t_last = torch.where(last < LEVEL_SAMPLES - 1, interp((last + 1).clamp(max=LEVEL_SAMPLES - 1), last), ts[:, -1])
    return t_first, t_last, found


def estimate_thickness(mesh: Mesh, sugar: GaussianSet, vanilla: GaussianSet, level: float,
                       extent: float) -> tuple[Tensor, Tensor]:
    """Per-vertex (inner, outer) thickness [V] each, ≥ MIN_SIZE · extent."""
    device = sugar.means.device
    verts = torch.from_numpy(mesh.vertices).float().to(device)
    normals = vertex_normals(verts, torch.from_numpy(mesh.faces).to(device))
    rots, scales = gaussian_frames(sugar.quats, sugar.log_scales)
    nb = knn(sugar.means, verts, SMOOTH_NEIGHBOURS)                              # [V, 4]
    along = torch.einsum("vkji,vj->vki", rots[nb], normals) * scales[nb]         # spread along n per neighbour
    sigma = along.norm(dim=-1).mean(1).clamp_min(1e-5)                           # [V]
    t0, t1, found = crossings(sugar, verts, normals, -PROPOSAL_SIGMAS * sigma, PROPOSAL_SIGMAS * sigma, level)
    t0 = torch.where(found, t0, -sigma)
    t1 = torch.where(found, t1, sigma)
    smooth = knn(verts, verts, SMOOTH_NEIGHBOURS)
    t0, t1 = t0[smooth].mean(1), t1[smooth].mean(1)
    centre, half = (t0 + t1) / 2, ((t1 - t0) / 2).clamp_min(1e-6)
    f0, f1, found2 = crossings(vanilla, verts, normals, centre - FINAL_RANGE * half, centre + FINAL_RANGE * half,
                               level)
    f0 = torch.where(found2, f0, t0)
    f1 = torch.where(found2, f1, t1)
    width = (f1 - f0).clamp_min(FINAL_CLAMP * 2 * half)                          # ≥ 0.1 × proposal width
    mid = (f0 + f1) / 2
    f0, f1 = mid - width / 2, mid + width / 2
    floor = MIN_SIZE * extent
    return (-f0).clamp_min(floor), f1.clamp_min(floor)


def allocate(mesh: Mesh, inner: Tensor, outer: Tensor, vanilla: GaussianSet, count: int,
             seed: int = 0) -> FrostedGaussians:
    """Spread `count` Gaussians over the prisms: ceil(N / 2F) per cell, the rest ∝ cell volume."""
    gen = torch.Generator().manual_seed(seed)
    device = vanilla.means.device
    verts = torch.from_numpy(mesh.vertices).float().to(device)
    faces = torch.from_numpy(mesh.faces).long().to(device)
    tri = verts[faces]
    area = 0.5 * torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
    volume = area * (inner + outer)[faces].mean(1)                                # [F]
    n_faces = len(faces)
    n_min = math.ceil(count / (2 * n_faces))
    base = torch.arange(n_faces).repeat_interleave(n_min)
    extra = max(count - len(base), 0)
    drawn = torch.multinomial(volume.cpu().clamp_min(1e-12), extra, replacement=True, generator=gen) if extra \
        else torch.zeros(0, dtype=torch.long)
    cells = torch.cat([base, drawn])
    m = len(cells)
    cuts = torch.sort(torch.rand(m, 5, generator=gen), dim=1).values             # uniform on the simplex
    weights = torch.diff(torch.cat([torch.zeros(m, 1), cuts, torch.ones(m, 1)], 1), dim=1).clamp_min(1e-6)
    zeros = lambda *shape: torch.zeros(*shape, device=device)
    layer = FrostedGaussians(verts, faces, inner.float(), outer.float(), cells.to(device),
                             torch.log(weights).to(device), torch.tensor([[1.0, 0, 0, 0]], device=device).repeat(m, 1),
                             zeros(m, 3), torch.full((m,), math.log(0.1 / 0.9), device=device), zeros(m, 1, 3),
                             zeros(m, vanilla.shN.shape[1], 3))
    centres = layer.centres()
    prisms = layer.prisms()[cells]                                                # [M, 6, 3]
    edges = torch.cdist(prisms, prisms).flatten(1).max(1).values                  # longest edge of the cell
    scale = torch.minimum(mean_neighbour_distance(centres), edges.clamp_min(1e-6))
    layer.log_scales = torch.log(scale)[:, None].repeat(1, 3)
    nearest = knn(vanilla.means, centres, 1)[:, 0]
    layer.sh0 = vanilla.sh0[nearest].clone()
    layer.shN = vanilla.shN[nearest].clone()
    return layer


def build_layer(mesh: Mesh, sugar: GaussianSet, vanilla: GaussianSet, count: int, level: float,
                extent: float, seed: int = 0) -> FrostedGaussians:
    inner, outer = estimate_thickness(mesh, sugar, vanilla, level, extent)
    return allocate(mesh, inner, outer, vanilla, count, seed)
