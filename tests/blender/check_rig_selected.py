"""Inside bpy: "Rig Selected Mesh" against the real backend, and the ways it can fail.

    python check_rig_selected.py CONFIG.json
CONFIG: {"mesh": npz with vertices [V,3] + faces [F,3] (object space), "markers": marker JSON in object space,
         "python": backend interpreter, "scenarios": ["rig", "kill", "network", "missing_python", "empties", "geometry"]}
Prints one result line with one entry per scenario.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import addon_env
import bpy
from mathutils import Matrix

USER_TRANSFORM = Matrix.LocRotScale((1.0, 2.0, 0.5), Matrix.Rotation(math.radians(30), 3, "Z").to_quaternion(),
                                    (0.5, 0.5, 0.5))


def make_user_object(mesh_npz: Path):
    """A user's own mesh: moved, rotated and scaled, with a material and a vertex group of its own."""
    data = np.load(mesh_npz)
    vertices, faces = data["vertices"].astype(np.float32), data["faces"].astype(np.int32)
    mesh = bpy.data.meshes.new("Character")
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, np.int32))
    mesh.update(calc_edges=True)
    mesh.materials.append(bpy.data.materials.new("UserMaterial"))
    obj = bpy.data.objects.new("Character", mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.matrix_world = USER_TRANSFORM
    group = obj.vertex_groups.new(name="keep_me")
    group.add([0, 1, 2], 0.75, "REPLACE")
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj


def snapshot(obj) -> dict:
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "armatures": len(bpy.data.armatures),
        "groups": [g.name for g in obj.vertex_groups],
        "modifiers": [m.type for m in obj.modifiers],
        "parent": obj.parent.name if obj.parent else None,
        "matrix": [list(row) for row in obj.matrix_world],
        "materials": [s.material.name if s.material else None for s in obj.material_slots],
    }


def job_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("keydiff3d_job_*")}


def evaluated_world(obj) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    co = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    world = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]


def reset(config: dict, keypoint_source: str, python: str):
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    addon_env.set_backend_python(python)
    obj = make_user_object(Path(config["mesh"]))
    settings = bpy.context.scene.keydiff3d
    settings.keypoint_source = keypoint_source
    settings.marker_file = config["markers"]
    return obj


def scenario_rig(config: dict, keypoint_source: str = "MARKER_FILE", subdivide: bool = False) -> dict:
    obj = reset(config, keypoint_source, config["python"])
    if subdivide:   # changes the vertex count: the base mesh must be rigged, the modifier kept after the Armature
        obj.modifiers.new("Subdivision", "SUBSURF").levels = 1
    if keypoint_source == "EMPTIES":    # the markers as empties parented to the mesh, in world space
        for i, point in enumerate(json.loads(Path(config["markers"]).read_text())["keypoints"]):
            empty = bpy.data.objects.new(f"marker_{i:02d}", None)
            bpy.context.scene.collection.objects.link(empty)
            empty.parent = obj
            empty.matrix_world = Matrix.Translation(USER_TRANSFORM @ __import__("mathutils").Vector(point))
        bpy.context.view_layer.objects.active = obj
    before, folders = snapshot(obj), job_folders()
    rest = evaluated_world(obj)
    started = time.perf_counter()
    outcome, report = addon_env.run_operator(bpy.ops.keydiff3d.rig_selected)
    result = {"outcome": outcome, "report": report, "seconds": time.perf_counter() - started}
    if outcome != ["FINISHED"]:
        return result
    after = snapshot(obj)
    armature = obj.parent
    result.update(
        armature_type=armature.type if armature else None,
        active_is_armature=bpy.context.active_object == armature, mode=bpy.context.mode,
        matrix_change=float(np.abs(np.array(after["matrix"]) - np.array(before["matrix"])).max()),
        materials_kept=after["materials"] == before["materials"],
        keep_me_weight=obj.vertex_groups["keep_me"].weight(1),
        first_modifier=[obj.modifiers[0].type, obj.modifiers[0].object == armature],
        deforming_bones=sum(b.use_deform for b in armature.data.bones),
        new_groups=len(obj.vertex_groups) - 1,
        folders_left=sorted(job_folders() - folders),
        modifier_types=[m.type for m in obj.modifiers],
        rest_unchanged=float(np.abs(evaluated_world(obj) - rest).max()),
    )
    if subdivide:   # compare base vertices below: switch the subdivision off for the pose check
        obj.modifiers["Subdivision"].show_viewport = False
        bpy.context.view_layer.update()
        rest = evaluated_world(obj)
    # pose the bone with the most weighted vertices: the mesh follows, unweighted vertices stay
    counts = {g.name: 0 for g in obj.vertex_groups}
    for vertex in obj.data.vertices:
        for element in vertex.groups:
            if element.weight > 0:
                counts[obj.vertex_groups[element.group].name] += 1
    bone_name = max((n for n in counts if n in armature.data.bones), key=counts.get)
    moving = {bone_name} | {b.name for b in armature.data.bones[bone_name].children_recursive}
    influenced = np.zeros(len(obj.data.vertices), bool)
    for vertex in obj.data.vertices:
        influenced[vertex.index] = any(obj.vertex_groups[e.group].name in moving and e.weight > 0 for e in vertex.groups)
    pose_bone = armature.pose.bones[bone_name]
    pose_bone.rotation_mode = "XYZ"
    pose_bone.rotation_euler = (math.radians(45), 0.0, 0.0)
    bpy.context.view_layer.update()
    moved = np.linalg.norm(evaluated_world(obj) - rest, axis=1) > 1e-6 * float(np.ptp(rest, axis=0).max())
    result.update(posed_bone=bone_name, moved=int(moved.sum()), influenced=int(influenced.sum()),
                  moved_without_influence=int((moved & ~influenced).sum()))
    return result


def scenario_kill(config: dict) -> dict:
    """Kill -9 the backend after it has said hello: one report, the scene as it was, no job folder left."""
    obj = reset(config, "MARKER_FILE", config["python"])
    addon = addon_env.addon_module()
    before, folders = snapshot(obj), job_folders()
    running = addon.operators.start_rig_selected(bpy.context)
    deadline = time.monotonic() + 60
    while running.job.reader.hello is None and time.monotonic() < deadline:
        running.job.poll()
        time.sleep(0.01)
    killed_after_hello = running.job.reader.hello is not None and not running.job.state.finished
    os.kill(running.job.pid, signal.SIGKILL)
    while running.poll_once(bpy.context) is not None:
        time.sleep(0.02)
    return {"killed_after_hello": killed_after_hello, "report": list(running.report or ()),
            "unchanged": snapshot(obj) == before, "folders_left": sorted(job_folders() - folders),
            "active_cleared": addon.jobs.ACTIVE is None}


def scenario_failure(config: dict, keypoint_source: str, python: str) -> dict:
    obj = reset(config, keypoint_source, python)
    before, folders = snapshot(obj), job_folders()
    outcome, report = addon_env.run_operator(bpy.ops.keydiff3d.rig_selected)
    return {"outcome": outcome, "report": report, "unchanged": snapshot(obj) == before,
            "folders_left": sorted(job_folders() - folders)}


def main(config_path: Path) -> None:
    config = json.loads(config_path.read_text())
    addon_env.enable_from_source()
    results = {}
    for name in config["scenarios"]:
        if name == "rig":
            results[name] = scenario_rig(config)
        elif name == "empties":
            results[name] = scenario_rig(config, "EMPTIES")
        elif name == "geometry":   # the default: no markers, joints on the mesh's curve skeleton
            results[name] = scenario_rig(config, "GEOMETRY")
        elif name == "subdivided":
            results[name] = scenario_rig(config, subdivide=True)
        elif name == "kill":
            results[name] = scenario_kill(config)
        elif name == "network":   # a checkpoint that is not there: the backend's error must reach the user
            bpy.context.preferences.addons[addon_env.MODULE].preferences.checkpoint = str(
                Path(tempfile.gettempdir()) / "no_such_checkpoint.pt")
            results[name] = scenario_failure(config, "NETWORK", config["python"])
            bpy.context.preferences.addons[addon_env.MODULE].preferences.checkpoint = ""
        elif name == "missing_python":
            results[name] = scenario_failure(config, "MARKER_FILE", str(Path(tempfile.gettempdir()) / "no_such_python"))
    addon_env.emit(results)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
