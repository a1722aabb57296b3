"""Write the reconstruction: mesh (.ply and .glb, normals + vertex colours), gaussians.ply, binding.npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from backend.export.bundle import write_mesh_glb
from backend.mesh import Mesh

from .deform import binding_from_layer, save_binding
from .gaussians import GaussianSet, save_ply
from .layer import FrostedGaussians


def save_mesh(mesh: Mesh, folder: Path) -> list[Path]:
    """mesh.ply in our Z-up world (as Blender's PLY importer reads it) and mesh.glb in glTF's Y-up axes, written
    by the bundle's own mesh writer so every .glb of the project stands upright in any viewer."""
    mesh = mesh.with_normals()
    colors = None if mesh.colors is None else np.clip(np.round(mesh.colors * 255), 0, 255).astype(np.uint8)
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=mesh.normals, vertex_colors=colors,
                         process=False)
    paths = [folder / "mesh.ply", folder / "mesh.glb"]
    paths[0].write_bytes(trimesh.exchange.ply.export_ply(tm, encoding="binary", vertex_normal=True))
    write_mesh_glb(paths[1], mesh)
    return paths


def save_frosting(layer: FrostedGaussians, folder: Path) -> list[Path]:
    centres = layer.centres().detach()
    gs = GaussianSet(centres, layer.quats, layer.log_scales, layer.opacity_logits, layer.sh0, layer.shN)
    return [save_ply(gs, folder / "gaussians.ply"), save_binding(binding_from_layer(layer), folder / "binding.npz")]
