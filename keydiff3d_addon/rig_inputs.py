"""What "Rig Selected Mesh" sends to the backend: the object's mesh in world space, and its keypoints.

The mesh is the evaluated one (modifiers applied) when its vertices are still the object's own vertices; when a
modifier changes the topology (Subdivision, Mirror...) the base mesh is sent instead, since the weights must land
on the object's own vertices, and the Armature modifier is put first so those modifiers follow the pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from .exchange_files import read_marker_file, transform_points, write_marker_file, write_ply


class InputError(ValueError):
    """Something about the user's selection or settings that stops a job before it starts."""


@dataclass(frozen=True)
class ExportedMesh:
    path: Path
    num_vertices: int
    evaluated: bool        # False: a topology-changing modifier made us send the base mesh


def export_mesh_world(context, obj, path: Path) -> ExportedMesh:
    depsgraph = context.evaluated_depsgraph_get()
    evaluated_obj = obj.evaluated_get(depsgraph)
    evaluated = evaluated_obj.to_mesh()
    try:
        same_vertices = len(evaluated.vertices) == len(obj.data.vertices)
        source = evaluated if same_vertices else obj.data
        source.calc_loop_triangles()
        num_vertices, num_triangles = len(source.vertices), len(source.loop_triangles)
        if num_triangles == 0:
            raise InputError(f"{obj.name!r} has no faces to rig")
        vertices = np.empty(3 * num_vertices, np.float32)
        source.vertices.foreach_get("co", vertices)
        triangles = np.empty(3 * num_triangles, np.int32)
        source.loop_triangles.foreach_get("vertices", triangles)
    finally:
        evaluated_obj.to_mesh_clear()
    world = np.array(obj.matrix_world, np.float64)                           # [4, 4]
    write_ply(path, transform_points(vertices.reshape(-1, 3), world), triangles.reshape(-1, 3))
    return ExportedMesh(path, num_vertices, same_vertices)


def marker_empties(obj, collection) -> list:
    """The empties that mark keypoints: those in `collection` if given, else the object's child empties."""
    candidates = collection.all_objects if collection is not None else obj.children
    return sorted((o for o in candidates if o.type == "EMPTY"), key=lambda o: o.name)


def write_markers_from_empties(obj, collection, path: Path) -> int:
    """World positions of the empties; an empty parented to another marker empty becomes a known bone."""
    empties = marker_empties(obj, collection)
    if len(empties) < 2:
        where = f"collection {collection.name!r}" if collection is not None else f"children of {obj.name!r}"
        raise InputError(f"need at least 2 marker empties ({where} has {len(empties)}); add empties or pick a marker file")
    index = {e.name: i for i, e in enumerate(empties)}
    keypoints = np.array([e.matrix_world.translation for e in empties], np.float64)   # [K, 3]
    edges = [(index[e.parent.name], i) for i, e in enumerate(empties) if e.parent is not None and e.parent.name in index]
    write_marker_file(path, keypoints, names=[e.name for e in empties], edges=edges or None)
    return len(empties)


def write_markers_from_file(obj, marker_file: str, path: Path) -> int:
    """A user's marker file is in the object's own coordinates; the backend gets them in world space."""
    source = Path(bpy.path.abspath(marker_file)) if marker_file else None
    if source is None or not source.is_file():
        raise InputError(f"marker file {marker_file!r} does not exist; pick a marker JSON file")
    try:
        document = read_marker_file(source)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    keypoints = transform_points(document["keypoints"], np.array(obj.matrix_world, np.float64))
    write_marker_file(path, keypoints, names=document.get("names"), edges=document.get("edges"))
    return len(keypoints)


def image_for_backend(context, source: str, image_path: str, image, workdir: Path) -> Path:
    """A file the backend can read: the chosen file, or the Blender image (saved to the job folder if needed)."""
    if source == "FILE":
        path = Path(bpy.path.abspath(image_path)) if image_path else None
        if path is None or not path.is_file():
            raise InputError(f"image file {image_path!r} does not exist; pick an image")
        return path
    if image is None:
        raise InputError("pick a Blender image (or switch the source to a file)")
    on_disk = Path(bpy.path.abspath(image.filepath)) if image.filepath else None
    if on_disk is not None and on_disk.is_file() and not image.is_dirty and image.packed_file is None:
        return on_disk
    if not image.has_data or image.size[0] == 0:
        raise InputError(f"image {image.name!r} has no pixels")
    target = workdir / "input.png"
    copy = image.copy()
    try:
        copy.filepath_raw = str(target)
        copy.file_format = "PNG"
        copy.save()
    finally:
        bpy.data.images.remove(copy)
    return target
