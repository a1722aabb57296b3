"""Blender's "With Automatic Weights" (bone heat) as a skinning baseline, run through bpy in a child process.

The parent side (numpy only) welds the mesh by position, writes it with the deforming bones to an .npz, runs
this file again as `--child` under an interpreter that has bpy (backend/ never imports bpy: one-way door),
and maps the weights of the welded vertices back to the split ones.

Why weld: glTF meshes split vertices at UV and normal seams, and bone heat needs a connected surface; on the
mesh as stored it fails ("Bone Heat Weighting: failed to find solution for one or more bones") on half the
characters of data/rigs and leaves their vertices unweighted (reference/skinning_baselines.md). Welding is
what a user would do first (Merge by Distance), so it is the fair comparison; `weld=False` measures the raw
behaviour.

In Blender the armature gets one bone per deforming bone of the Rig (same head and tail; parented to the
nearest deforming ancestor, unconnected), then `parent_set(type="ARMATURE_AUTO")`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WELD_DECIMALS = 6   # positions equal to 1e-6 of the unit-cube frame are one vertex


@dataclass(frozen=True)
class BoneHeatResult:
    weights: np.ndarray        # [V, B] dense, per bone of the Rig (link bones 0); zero rows = unweighted
    seconds: float             # wall time of the bpy child, including bpy import
    welded_vertices: int       # vertices Blender saw
    failed: bool               # Blender reported that bone heat found no solution for some bone
    log_tail: str              # last lines Blender printed (for the report)


def weld_by_position(vertices: np.ndarray, faces: np.ndarray, decimals: int = WELD_DECIMALS):
    """(welded vertices [W, 3], faces [F', 3] without collapsed triangles, index map [V] -> [0, W))."""
    keys = np.round(vertices, decimals)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    welded = vertices[first]
    welded_faces = inverse[faces]
    keep = (welded_faces[:, 0] != welded_faces[:, 1]) & (welded_faces[:, 1] != welded_faces[:, 2]) & (welded_faces[:, 0] != welded_faces[:, 2])
    return welded, welded_faces[keep], inverse


def bone_heat_weights(vertices: np.ndarray, faces: np.ndarray, rig, *, weld: bool = True,
                      python: str = sys.executable, timeout: float = 600.0) -> BoneHeatResult:
    """Dense bone-heat weights [V, B] for `rig` (a backend.rig.Rig) on the mesh, computed by Blender."""
    if weld:
        mesh_vertices, mesh_faces, index_map = weld_by_position(vertices, faces)
    else:
        mesh_vertices, mesh_faces, index_map = vertices, faces, np.arange(len(vertices))
    deforming = np.flatnonzero(rig.bone_deforms)
    deform_parent = _nearest_deforming_parent(rig, deforming)
    with tempfile.TemporaryDirectory(prefix="keydiff3d_boneheat_") as tmp:
        request, answer = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(request, vertices=mesh_vertices, faces=mesh_faces, heads=rig.bone_heads[deforming],
                 tails=rig.bone_tails[deforming], parents=deform_parent)
        start = time.perf_counter()
        run = subprocess.run([python, __file__, "--child", str(request), str(answer)],
                             capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - start
        log = (run.stdout + run.stderr).strip()
        if run.returncode != 0 or not answer.exists():
            raise RuntimeError(f"bpy child failed (exit {run.returncode}): {log[-2000:]}")
        welded_weights = np.load(answer)["weights"]                       # [W, D]
    weights = np.zeros((len(vertices), rig.num_bones))
    weights[:, deforming] = welded_weights[index_map]
    return BoneHeatResult(weights, seconds, len(mesh_vertices), "failed to find solution" in log,
                          "\n".join(log.splitlines()[-3:]))


def _nearest_deforming_parent(rig, deforming: np.ndarray) -> np.ndarray:
    """[D] index into `deforming` of each deforming bone's nearest deforming ancestor, -1 if none."""
    slot = np.full(rig.num_bones, -1, np.int64)
    slot[deforming] = np.arange(len(deforming))
    parents = rig.bone_parents
    out = np.full(len(deforming), -1, np.int64)
    for k, bone in enumerate(deforming):
        b = parents[bone]
        while b >= 0 and slot[b] < 0:
            b = parents[b]
        out[k] = slot[b] if b >= 0 else -1
    return out


# --- child: runs inside an interpreter with bpy -----------------------------------------------------------
def _child(request: Path, answer: Path) -> None:
    import bpy  # noqa: PLC0415 - only the child process touches Blender

    data = np.load(request)
    vertices, faces = data["vertices"].astype(np.float32), data["faces"].astype(np.int32)
    heads, tails, parents = data["heads"], data["tails"], data["parents"]
    bpy.ops.wm.read_factory_settings(use_empty=True)

    mesh = bpy.data.meshes.new("body")
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, np.int32))
    mesh.update(calc_edges=True)
    mesh.validate()
    body = bpy.data.objects.new("body", mesh)
    bpy.context.scene.collection.objects.link(body)

    armature = bpy.data.armatures.new("rig")
    rig_object = bpy.data.objects.new("rig", armature)
    bpy.context.scene.collection.objects.link(rig_object)
    bpy.context.view_layer.objects.active = rig_object
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for k in range(len(heads)):
        bone = armature.edit_bones.new(f"bone_{k:03d}")
        bone.head, bone.tail = heads[k].tolist(), tails[k].tolist()
        bones.append(bone)
    for k, p in enumerate(parents.tolist()):
        if p >= 0:
            bones[k].parent = bones[p]
            bones[k].use_connect = False
    bpy.ops.object.mode_set(mode="OBJECT")

    bpy.ops.object.select_all(action="DESELECT")
    body.select_set(True)
    rig_object.select_set(True)
    bpy.context.view_layer.objects.active = rig_object
    bpy.ops.object.parent_set(type="ARMATURE_AUTO")

    group_bone = {g.index: int(g.name.split("_")[1]) for g in body.vertex_groups}
    weights = np.zeros((len(vertices), len(heads)), np.float64)
    for v in body.data.vertices:            # a baseline on small meshes: a Python loop is fine here
        for g in v.groups:
            weights[v.index, group_bone[g.group]] = g.weight
    np.savez(answer, weights=weights)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("REQUEST", "ANSWER"), required=True)
    args = parser.parse_args()
    _child(Path(args.child[0]), Path(args.child[1]))
