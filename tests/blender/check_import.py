"""Inside bpy: import a bundle with File > Import > KeyDiff3D Bundle and measure what a user relies on.

    python check_import.py BUNDLE_DIR
Prints one result line (see addon_env.emit) with bone/weight errors, the posing check and the rollback check.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import addon_env
import bpy


def data_counts() -> dict:
    return {name: len(getattr(bpy.data, name)) for name in
            ("objects", "meshes", "armatures", "materials", "images", "collections")}


def vertex_group_weights(obj, bone_names: list[str]) -> np.ndarray:
    """[V, B] dense weights read back from Blender (a test-only per-vertex loop)."""
    column = {obj.vertex_groups[name].index: b for b, name in enumerate(bone_names) if name in obj.vertex_groups}
    dense = np.zeros((len(obj.data.vertices), len(bone_names)), np.float64)
    for vertex in obj.data.vertices:
        for element in vertex.groups:
            dense[vertex.index, column[element.group]] = element.weight
    return dense


def evaluated_positions(obj) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    positions = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", positions)
    evaluated.to_mesh_clear()
    return positions.reshape(-1, 3).astype(np.float64)


def main(bundle_dir: Path) -> None:
    addon_env.fresh_scene()
    addon_env.enable_from_source()
    addon = addon_env.addon_module()
    document = json.loads((bundle_dir / "rig.json").read_text())
    npz = np.load(bundle_dir / "weights.npz")
    result: dict = {}

    # a failure half-way (after the Armature exists) must take everything back
    before = data_counts()
    real_assign = addon.scene_build.assign_weights

    def failing_assign(*args, **kwargs):
        raise RuntimeError("simulated failure while assigning weights")

    addon.scene_build.assign_weights = failing_assign
    outcome, report = addon_env.run_operator(bpy.ops.import_scene.keydiff3d_bundle,
                                             filepath=str(bundle_dir / "rig.json"))
    addon.scene_build.assign_weights = real_assign
    result["failed_import"] = {"outcome": outcome, "report": report, "counts_unchanged": data_counts() == before,
                               "mode": bpy.context.mode}

    started = time.perf_counter()
    outcome = bpy.ops.import_scene.keydiff3d_bundle(filepath=str(bundle_dir / "rig.json"))
    result["import_seconds"] = time.perf_counter() - started
    result["outcome"] = sorted(outcome)
    armature_obj = bpy.context.active_object
    result["active_type"], result["mode"] = armature_obj.type, armature_obj.mode
    mesh_obj = next(o for o in armature_obj.children if o.type == "MESH")
    result["collection_objects"] = sorted(o.type for o in mesh_obj.users_collection[0].objects)
    result["modifiers"] = [(m.type, m.object.name if m.object else None) for m in mesh_obj.modifiers]
    result["parent_is_armature"] = mesh_obj.parent == armature_obj
    result["has_texture_or_colors"] = bool(mesh_obj.data.color_attributes) or any(
        n.type == "TEX_IMAGE" and n.image is not None for n in mesh_obj.active_material.node_tree.nodes)

    bones = document["bones"]
    names = [b["name"] for b in bones]
    arm_bones = armature_obj.data.bones
    result["bone_names_equal"] = sorted(b.name for b in arm_bones) == sorted(names)
    heads = np.array([arm_bones[n].head_local for n in names])
    tails = np.array([arm_bones[n].tail_local for n in names])
    result["head_error"] = float(np.abs(heads - np.array([b["head"] for b in bones])).max())
    result["tail_error"] = float(np.abs(tails - np.array([b["tail"] for b in bones])).max())
    result["parents_equal"] = all(
        (arm_bones[n].parent.name if arm_bones[n].parent else None) == (names[b["parent"]] if b["parent"] >= 0 else None)
        for n, b in zip(names, bones))

    dense_expected = np.zeros((len(npz["indices"]), len(names)))
    np.add.at(dense_expected, (np.repeat(np.arange(len(npz["indices"])), npz["indices"].shape[1]),
                               npz["indices"].ravel()), npz["weights"].ravel())
    dense_blender = vertex_group_weights(mesh_obj, names)
    result["vertex_count"] = [len(mesh_obj.data.vertices), len(npz["indices"])]
    result["weight_error"] = float(np.abs(dense_blender - dense_expected).max())

    # pose one leaf bone: exactly the vertices weighted to it move, by the linear-blend amount
    children = {b["parent"] for b in bones}
    leaves = [i for i in range(len(bones)) if i not in children and bones[i]["deform"]]
    leaf = max(leaves, key=lambda i: (dense_expected[:, i] > 0).sum())
    rest = evaluated_positions(mesh_obj)
    pose_bone = armature_obj.pose.bones[names[leaf]]
    pose_bone.rotation_mode = "XYZ"
    pose_bone.rotation_euler = (math.radians(40), 0.0, math.radians(25))
    bpy.context.view_layer.update()
    posed = evaluated_positions(mesh_obj)
    matrix = np.array(pose_bone.matrix) @ np.linalg.inv(np.array(arm_bones[names[leaf]].matrix_local))
    moved_rigidly = rest @ matrix[:3, :3].T + matrix[:3, 3]
    weight = dense_expected[:, leaf][:, None]
    expected = rest + weight * (moved_rigidly - rest)
    size = float(np.linalg.norm(rest.max(0) - rest.min(0)))
    moved = np.linalg.norm(posed - rest, axis=1) > 1e-6 * size
    result["posed_bone"] = names[leaf]
    result["moved_count"] = int(moved.sum())
    result["weighted_count"] = int((weight[:, 0] > 0).sum())
    result["moved_without_weight"] = int((moved & (weight[:, 0] == 0)).sum())
    strongly = (weight[:, 0] > 1e-3) & (np.linalg.norm(moved_rigidly - rest, axis=1) > 1e-3 * size)
    result["strongly_weighted_not_moved"] = int((strongly & ~moved).sum())
    result["pose_error_relative"] = float(np.abs(posed - expected).max() / size)
    addon_env.emit(result)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
