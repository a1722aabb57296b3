"""Turns a read bundle into Blender data: mesh object, Armature, vertex groups, Armature modifier, parent.

Every datablock made and every change to an existing object is recorded in a `SceneChanges`; if anything fails
half-way, `rollback()` removes them, so a failed import leaves the scene as it was. Bulk data goes through
`foreach_set` (no per-vertex Python loops); weights are added per (bone, distinct weight value).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

import bpy
import numpy as np
from mathutils import Matrix

from .bundle import Bundle, BundleBones
from .glb_mesh import GlbMesh

MODIFIER_NAME = "KeyDiff3D Armature"
COLOR_ATTRIBUTE = "Color"
MIN_BONE_LENGTH_FRACTION = 1e-4   # Blender deletes zero-length bones; such bones get this fraction of the rig size


@dataclass
class SceneChanges:
    """What an import added, so that a failure can take it all back."""

    ids: list = field(default_factory=list)                   # datablocks created, newest last
    vertex_groups: list[tuple[bpy.types.Object, str]] = field(default_factory=list)
    modifiers: list[tuple[bpy.types.Object, str]] = field(default_factory=list)
    parents: list[tuple[bpy.types.Object, object, Matrix, Matrix]] = field(default_factory=list)

    def add(self, datablock):
        self.ids.append(datablock)
        return datablock

    def rollback(self) -> None:
        for obj, parent, parent_inverse, world in reversed(self.parents):
            obj.parent = parent
            obj.matrix_parent_inverse = parent_inverse
            obj.matrix_world = world
        for obj, name in reversed(self.modifiers):
            if name in obj.modifiers:
                obj.modifiers.remove(obj.modifiers[name])
        for obj, name in reversed(self.vertex_groups):
            if name in obj.vertex_groups:
                obj.vertex_groups.remove(obj.vertex_groups[name])
        for datablock in reversed(self.ids):
            _remove_id(datablock)
        self.ids.clear()


@dataclass(frozen=True)
class BuiltRig:
    armature: bpy.types.Object
    bone_names: list[str]        # [B] the names Blender gave (equal to the bundle's unless they clashed)
    nudged_bones: int            # zero-length bones that were given a minimal length


def ensure_object_mode(context) -> None:
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")


def build_mesh_object(name: str, mesh: GlbMesh, collection, changes: SceneChanges) -> bpy.types.Object:
    """A mesh object whose vertex i is the bundle's vertex i, with its UVs/texture or vertex colours."""
    data = changes.add(bpy.data.meshes.new(name))
    num_vertices, num_triangles = mesh.num_vertices, len(mesh.triangles)
    data.vertices.add(num_vertices)
    data.vertices.foreach_set("co", mesh.positions.astype(np.float32).ravel())
    data.loops.add(3 * num_triangles)
    data.loops.foreach_set("vertex_index", mesh.triangles.astype(np.int32).ravel())
    data.polygons.add(num_triangles)
    data.polygons.foreach_set("loop_start", np.arange(0, 3 * num_triangles, 3, dtype=np.int32))
    data.polygons.foreach_set("loop_total", np.full(num_triangles, 3, np.int32))
    data.update(calc_edges=True)
    data.validate(clean_customdata=False)
    data.shade_smooth()
    if mesh.uvs is not None:
        uv_layer = data.uv_layers.new(name="UVMap")
        uv_layer.data.foreach_set("uv", mesh.uvs[mesh.triangles.ravel()].astype(np.float32).ravel())
    if mesh.colors is not None:
        colors = data.color_attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
        colors.data.foreach_set("color", mesh.colors.astype(np.float32).ravel())
    data.materials.append(_material(name, mesh, changes))
    obj = changes.add(bpy.data.objects.new(name, data))
    collection.objects.link(obj)
    return obj


def build_armature(context, name: str, bones: BundleBones, collection, changes: SceneChanges,
                   mirror_x: bool = False) -> BuiltRig:
    """An Armature whose bone b has the bundle's head/tail/parent; needs Edit mode, so it becomes active.

    mirror_x: the backend made the rig mirror-symmetric across X with .L/.R names, so Edit mode's X-Axis Mirror
    is switched on (editing one side moves its partner)."""
    armature = changes.add(bpy.data.armatures.new(name))
    armature.display_type = "OCTAHEDRAL"
    armature.use_mirror_x = mirror_x
    obj = changes.add(bpy.data.objects.new(name, armature))
    collection.objects.link(obj)
    obj.show_in_front = True
    ensure_object_mode(context)
    context.view_layer.objects.active = obj
    tails, nudged = _printable_tails(bones)
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = [armature.edit_bones.new(n) for n in bones.names]
        for b, edit_bone in enumerate(edit_bones):
            edit_bone.head = bones.heads[b]
            edit_bone.tail = tails[b]
            edit_bone.use_deform = bool(bones.deforms[b])
        for b, parent in enumerate(bones.parents.tolist()):
            if parent >= 0:
                edit_bones[b].parent = edit_bones[parent]
                edit_bones[b].use_connect = bool(np.allclose(tails[parent], bones.heads[b], atol=1e-9))
        blender_names = [e.name for e in edit_bones]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    return BuiltRig(obj, blender_names, nudged)


def assign_weights(obj, group_names: list[str], deforms: np.ndarray, indices: np.ndarray, values: np.ndarray,
                   changes: SceneChanges) -> None:
    """One vertex group per deforming bone; vertex v gets weight values[v, s] in group indices[v, s]."""
    num_vertices, slots = indices.shape
    num_bones = len(group_names)
    vertex = np.repeat(np.arange(num_vertices, dtype=np.int64), slots)   # [V*k]
    bone = indices.astype(np.int64).ravel()                              # [V*k]
    weight = values.astype(np.float32).ravel()                           # [V*k]
    keep = weight > 0
    key, summed = np.unique(vertex[keep] * num_bones + bone[keep], return_inverse=True)
    weight = np.bincount(summed, weights=weight[keep]).astype(np.float32)  # a bone listed twice adds up
    vertex, bone = key // num_bones, key % num_bones
    order = np.lexsort((weight, bone))                 # by bone, then by weight value
    vertex, bone, weight = vertex[order], bone[order], weight[order]
    bone_starts = np.searchsorted(bone, np.arange(num_bones + 1))
    for b in range(num_bones):
        if not deforms[b]:
            continue
        group = obj.vertex_groups.new(name=group_names[b])
        changes.vertex_groups.append((obj, group.name))
        lo, hi = bone_starts[b], bone_starts[b + 1]
        run_values, run_starts = np.unique(weight[lo:hi], return_index=True)
        run_ends = np.append(run_starts[1:], hi - lo)
        members = vertex[lo:hi].tolist()
        for value, start, end in zip(run_values.tolist(), run_starts.tolist(), run_ends.tolist()):
            group.add(members[start:end], value, "REPLACE")


def bind(obj, armature_obj, changes: SceneChanges, *, set_parent: bool = True) -> None:
    """Armature modifier first in the stack (later modifiers follow the pose); parent keeps the world transform."""
    modifier = obj.modifiers.new(name=MODIFIER_NAME, type="ARMATURE")
    changes.modifiers.append((obj, modifier.name))
    modifier.object = armature_obj
    modifier.use_vertex_groups = True
    modifier.use_bone_envelopes = False
    if len(obj.modifiers) > 1:
        obj.modifiers.move(len(obj.modifiers) - 1, 0)
    if set_parent:
        world = obj.matrix_world.copy()
        changes.parents.append((obj, obj.parent, obj.matrix_parent_inverse.copy(), world))
        obj.parent = armature_obj
        obj.matrix_parent_inverse = armature_obj.matrix_world.inverted()
        obj.matrix_world = world


def import_bundle(context, bundle: Bundle, name: str) -> tuple[bpy.types.Collection, bpy.types.Object, BuiltRig]:
    """A new collection holding the bundle's mesh and Armature, bound; rolled back entirely on failure."""
    changes = SceneChanges()
    try:
        collection = changes.add(bpy.data.collections.new(name))
        context.scene.collection.children.link(collection)
        mesh_obj = build_mesh_object(name, bundle.mesh, collection, changes)
        rig = build_armature(context, f"{name}_rig", bundle.bones, collection, changes, mirrored_across_x(bundle))
        assign_weights(mesh_obj, rig.bone_names, bundle.bones.deforms, bundle.weight_indices,
                       bundle.weight_values, changes)
        bind(mesh_obj, rig.armature, changes)
        enter_pose_mode(context, rig.armature)
    except BaseException:
        _leave_edit_modes(context)
        changes.rollback()
        raise
    return collection, mesh_obj, rig


def bind_bundle_to_object(context, bundle: Bundle, obj) -> BuiltRig:
    """Rig an existing mesh object in place: Armature beside it, vertex groups added, modifier, parent."""
    if len(obj.data.vertices) != bundle.num_vertices:
        raise ValueError(
            f"{obj.name!r} has {len(obj.data.vertices)} vertices but the rig's weights cover {bundle.num_vertices}; "
            "the mesh changed while the backend ran"
        )
    collection = obj.users_collection[0] if obj.users_collection else context.scene.collection
    changes = SceneChanges()
    try:
        names = _unclashing_names(bundle.bones.names, {g.name for g in obj.vertex_groups})
        bones = BundleBones(names, bundle.bones.heads, bundle.bones.tails, bundle.bones.parents, bundle.bones.deforms)
        rig = build_armature(context, f"{obj.name}_rig", bones, collection, changes, mirrored_across_x(bundle))
        assign_weights(obj, rig.bone_names, bones.deforms, bundle.weight_indices, bundle.weight_values, changes)
        bind(obj, rig.armature, changes, set_parent=obj.parent is None)
        enter_pose_mode(context, rig.armature)
    except BaseException:
        _leave_edit_modes(context)
        changes.rollback()
        raise
    return rig


def mirrored_across_x(bundle: Bundle) -> bool:
    """Whether the backend found the mesh mirror-symmetric across X and named the rig's sides .L/.R."""
    mirror = (bundle.document.get("settings") or {}).get("mirror")
    return isinstance(mirror, dict) and mirror.get("plane") == "x"


def enter_pose_mode(context, armature_obj) -> None:
    for selected in list(context.selected_objects):
        selected.select_set(False)
    armature_obj.select_set(True)
    context.view_layer.objects.active = armature_obj
    bpy.ops.object.mode_set(mode="POSE")


# --- helpers ------------------------------------------------------------------------------------------------
def _printable_tails(bones: BundleBones) -> tuple[np.ndarray, int]:
    """Tails, with zero-length bones lengthened along +Z by a tiny fraction of the rig's size."""
    tails = bones.tails.copy()
    points = np.concatenate([bones.heads, bones.tails])
    size = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0))) or 1.0
    short = np.linalg.norm(tails - bones.heads, axis=1) < MIN_BONE_LENGTH_FRACTION * size
    tails[short] = bones.heads[short] + np.array([0.0, 0.0, MIN_BONE_LENGTH_FRACTION * size])
    return tails, int(short.sum())


def _unclashing_names(names: tuple[str, ...], taken: set[str]) -> tuple[str, ...]:
    """The object's own vertex groups are never overwritten: a bone whose name is taken gets a suffix."""
    result, used = [], set(taken)
    for name in names:
        candidate, n = name, 1
        while candidate in used:
            candidate, n = f"{name}.kd{n:03d}", n + 1
        used.add(candidate)
        result.append(candidate)
    return tuple(result)


def _material(name: str, mesh: GlbMesh, changes: SceneChanges):
    material = changes.add(bpy.data.materials.new(name))
    if hasattr(material, "use_nodes") and not material.use_nodes:
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    shader = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if shader is None:
        return material
    if mesh.texture is not None:
        node = nodes.new("ShaderNodeTexImage")
        node.image = _packed_image(name, mesh.texture, mesh.texture_mime, changes)
        links.new(node.outputs["Color"], shader.inputs["Base Color"])
    elif mesh.colors is not None:
        node = nodes.new("ShaderNodeVertexColor")
        node.layer_name = COLOR_ATTRIBUTE
        links.new(node.outputs["Color"], shader.inputs["Base Color"])
    return material


def _packed_image(name: str, encoded: bytes, mime: str | None, changes: SceneChanges):
    """Blender loads images from files only: write a temporary file, load, pack it into the .blend, delete it."""
    suffix = ".jpg" if mime == "image/jpeg" else ".png"
    handle, path = tempfile.mkstemp(prefix="keydiff3d_", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(encoded)
        image = changes.add(bpy.data.images.load(path, check_existing=False))
        image.name = f"{name}_texture"
        image.pack()
    finally:
        os.unlink(path)
    return image


def _remove_id(datablock) -> None:
    collections = {
        bpy.types.Object: bpy.data.objects, bpy.types.Mesh: bpy.data.meshes, bpy.types.Armature: bpy.data.armatures,
        bpy.types.Material: bpy.data.materials, bpy.types.Image: bpy.data.images,
        bpy.types.Collection: bpy.data.collections,
    }
    try:
        for kind, store in collections.items():
            if isinstance(datablock, kind):
                store.remove(datablock)
                return
    except ReferenceError:
        pass   # already freed together with its owner


def _leave_edit_modes(context) -> None:
    try:
        ensure_object_mode(context)
    except RuntimeError:
        pass
