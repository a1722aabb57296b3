"""Read a user's mesh file (glb, gltf, obj, ply, stl) into one `Mesh` in our Z-up world.

Several parts are joined in scene (world) space. glTF and OBJ are Y-up by convention and are turned Z-up the way
Blender's importers do; PLY and STL are taken as they are. Units are kept: the rig is built in a canonical frame
and mapped back, so the user's scale never changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from .errors import KeyDiffError
from .export.axes import GLTF_TO_WORLD
from .mesh import Mesh

SUPPORTED_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl")
Y_UP_SUFFIXES = (".glb", ".gltf", ".obj")
MAX_FACES = 1_000_000   # beyond this, skinning and Blender import stop being interactive: ask for a decimated mesh


def load_mesh(path: str | os.PathLike, *, max_faces: int = MAX_FACES) -> Mesh:
    """The file's geometry as one validated Mesh, with vertex colours (or a single texture) when present."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise KeyDiffError("unreadable_file", f"{path.name}: unsupported mesh format {suffix!r}; use one of {SUPPORTED_SUFFIXES}")
    if not path.is_file():
        raise KeyDiffError("unreadable_file", f"{path} does not exist or is not a file")
    if not os.access(path, os.R_OK):
        raise KeyDiffError("unreadable_file", f"{path} is not readable (permission denied)")
    if path.stat().st_size == 0:
        raise KeyDiffError("unreadable_file", f"{path} is empty")
    try:
        loaded = trimesh.load(path, process=False, maintain_order=True)
    except Exception as exc:  # trimesh raises many types for corrupt files; all mean the same to a user
        raise KeyDiffError("unreadable_file", f"{path.name} is not a readable {suffix[1:]} file: {exc}") from exc
    parts = _triangle_parts(loaded)
    if not parts:
        raise KeyDiffError("invalid_mesh", f"{path.name} contains no triangle faces (points or lines only?)")
    num_faces = sum(len(p.faces) for p in parts)
    if num_faces > max_faces:
        raise KeyDiffError(
            "invalid_mesh",
            f"{path.name} has {num_faces:,} faces; the limit is {max_faces:,} — decimate it first "
            f"(Blender: Decimate modifier) and try again",
        )
    mesh = _join(parts)
    if suffix in Y_UP_SUFFIXES:
        mesh = mesh.transformed(GLTF_TO_WORLD)
    return mesh.validate()


def _triangle_parts(loaded) -> list[trimesh.Trimesh]:
    if isinstance(loaded, trimesh.Scene):
        geometries = loaded.dump(concatenate=False)
    else:
        geometries = [loaded]
    return [g for g in geometries if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]


def _join(parts: list[trimesh.Trimesh]) -> Mesh:
    single_texture = len(parts) == 1 and _texture_image(parts[0]) is not None
    vertices, faces, colors, offset = [], [], [], 0
    for part in parts:
        vertices.append(np.asarray(part.vertices, np.float64))
        faces.append(np.asarray(part.faces, np.int64) + offset)
        offset += len(part.vertices)
        if not single_texture:
            colors.append(_vertex_colors(part))
    mesh = Mesh(np.concatenate(vertices), np.concatenate(faces))
    if single_texture:
        part = parts[0]
        uv = np.asarray(part.visual.uv, np.float32)
        uvs = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]).astype(np.float32)  # trimesh v-up -> glTF v-down
        image = np.asarray(_texture_image(part).convert("RGBA"))
        return Mesh(mesh.vertices, mesh.faces, uvs=uvs, texture=image)
    if any(c is not None for c in colors):
        filled = [c if c is not None else np.full((len(p.vertices), 4), 0.8, np.float32) for c, p in zip(colors, parts)]
        return Mesh(mesh.vertices, mesh.faces, colors=np.concatenate(filled))
    return mesh


def _texture_image(part: trimesh.Trimesh):
    visual = part.visual
    if getattr(visual, "kind", None) != "texture" or getattr(visual, "uv", None) is None:
        return None
    material = visual.material
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    return image


def _vertex_colors(part: trimesh.Trimesh) -> np.ndarray | None:
    """[V, 4] linear float colours from vertex colours, a texture or a material's base colour."""
    visual = part.visual
    if getattr(visual, "kind", None) is None:
        return None
    factor = getattr(getattr(visual, "material", None), "baseColorFactor", None)
    if visual.kind == "texture" and getattr(visual, "uv", None) is None and factor is not None:
        # a plain coloured material (no image): every vertex takes its base colour
        return np.tile(np.asarray(factor, np.float32).reshape(1, 4) / 255.0, (len(part.vertices), 1))
    try:
        rgba = np.asarray(visual.to_color().vertex_colors if visual.kind == "texture" else visual.vertex_colors)
    except Exception:  # an unusual material trimesh cannot sample: the geometry still rigs fine without colour
        return None
    if rgba.shape != (len(part.vertices), 4):
        return None
    return (rgba.astype(np.float32) / 255.0).astype(np.float32)
