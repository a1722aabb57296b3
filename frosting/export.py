"""Write the reconstruction: mesh (.ply and .glb, normals + vertex colours), gaussians.ply, binding.npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from backend.mesh import Mesh

from .deform import binding_from_layer, save_binding
from .gaussians import GaussianSet, save_ply
from .layer import FrostedGaussians


def save_mesh(mesh: Mesh, folder: Path) -> list[Path]:
    mesh = mesh.with_normals()
    colors = None if mesh.colors is None else np.clip(np.round(mesh.colors * 255), 0, 255).astype(np.uint8)
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=mesh.normals, vertex_colors=colors,
                         process=False)
    paths = [folder / "mesh.ply", folder / "mesh.glb"]
    paths[0].write_bytes(trimesh.exchange.ply.export_ply(tm, encoding="binary", vertex_normal=True))
    paths[1].write_bytes(trimesh.exchange.gltf.export_glb(trimesh.Scene(tm), include_normals=True))
    return paths


def save_frosting(layer: FrostedGaussians, folder: Path) -> list[Path]:
    centres = layer.centres().detach()
    gs = GaussianSet(centres, layer.quats, layer.log_scales, layer.opacity_logits, layer.sh0, layer.shN)
    return [save_ply(gs, folder / "gaussians.ply"), save_binding(binding_from_layer(layer), folder / "binding.npz")]
