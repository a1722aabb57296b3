"""Time "Import KeyDiff3D Bundle" in Blender (bpy 5.0.1 wheel, headless) on a 50k-vertex, 32-bone bundle.

Goal (issue #8): <= 2 s for the whole import (read files, mesh, Armature, vertex groups, modifier, pose mode).
Writes benchmarks/results/addon_import.json.

    .venv/bin/python benchmarks/addon_import.py [--vertices 50000] [--bones 32] [--repeats 5]

The bundle is made here with the backend (a vertex-coloured tube, a 33-joint chain, Gaussian-distance top-4
weights: every weight a distinct float, the worst case for batching vertex-group writes); the import runs in a bpy
child process that loads the add-on from the working tree as an extension, as a user's Blender would.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info, write_result

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "addon_import.json"
GOAL_SECONDS = 2.0
RESULT_PREFIX = "ADDON_IMPORT_RESULT "


def make_bundle(folder: Path, num_vertices: int, num_bones: int) -> Path:
    import numpy as np

    from backend.export.bundle import RigResult, write_bundle
    from backend.mesh import Mesh
    from backend.rig import Rig
    from backend.skinning import gaussian_distance_weights

    sides = 100
    rings = num_vertices // sides
    angle = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    z = np.linspace(0.0, 2.0, rings)
    vertices = np.stack(np.broadcast_arrays(0.1 * np.cos(angle)[None], 0.1 * np.sin(angle)[None], z[:, None]), -1)
    vertices = vertices.reshape(-1, 3)                                     # [V, 3]
    # jitter so that (almost) every weight is a distinct float: the worst case for batched vertex-group writes
    vertices = vertices + np.random.default_rng(0).normal(scale=2e-3, size=vertices.shape)
    ring, side = np.meshgrid(np.arange(rings - 1), np.arange(sides), indexing="ij")
    a = ring * sides + side
    b = ring * sides + (side + 1) % sides
    quads = np.stack([a, b, b + sides, a + sides], -1).reshape(-1, 4)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])     # [F, 3]
    colors = np.column_stack([vertices[:, 2] / 2.0, 0.5 * np.ones(len(vertices)), 1 - vertices[:, 2] / 2.0,
                              np.ones(len(vertices))]).astype(np.float32)
    mesh = Mesh(vertices, faces, colors=colors)
    joints = np.column_stack([np.zeros(num_bones + 1), np.zeros(num_bones + 1), np.linspace(0, 2, num_bones + 1)])
    rig = Rig(joints, np.arange(-1, num_bones), tuple(f"joint_{j:02d}" for j in range(num_bones + 1)))
    weights = gaussian_distance_weights(vertices, rig, top_k=4)
    return write_bundle(folder / "bundle", RigResult(mesh=mesh, rig=rig, weights=weights))


def blender_child(bundle: Path, repeats: int) -> None:
    """Runs inside bpy: time the operator and each stage of the import."""
    import bpy

    repo_dir = Path(tempfile.mkdtemp(prefix="kd_bench_repo_"))
    (repo_dir / "keydiff3d_addon").symlink_to(REPO / "keydiff3d_addon", target_is_directory=True)
    bpy.context.preferences.extensions.repos.new(name="kdbench", module="kdbench", custom_directory=str(repo_dir),
                                                 source="USER")
    import addon_utils as au  # importable once bpy is

    au.enable("bl_ext.kdbench.keydiff3d_addon", default_set=True)
    addon = sys.modules["bl_ext.kdbench.keydiff3d_addon"]
    stages: dict[str, list[float]] = {}

    def timed(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                stages.setdefault(name, []).append(time.perf_counter() - started)
        setattr(module, name, wrapper)

    for name in ("read_bundle",):
        timed(addon.operators, name)
    for name in ("build_mesh_object", "build_armature", "assign_weights", "bind", "enter_pose_mode"):
        timed(addon.scene_build, name)
    totals = []
    for _ in range(repeats):
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        started = time.perf_counter()
        outcome = bpy.ops.import_scene.keydiff3d_bundle(filepath=str(bundle / "rig.json"))
        totals.append(time.perf_counter() - started)
        assert outcome == {"FINISHED"}, outcome
    mesh = next(o for o in bpy.data.objects if o.type == "MESH")
    print(RESULT_PREFIX + json.dumps({
        "seconds_all": [round(t, 4) for t in totals], "stages_seconds_median": {
            k: round(sorted(v)[len(v) // 2], 4) for k, v in stages.items()},
        "vertices": len(mesh.data.vertices), "vertex_groups": len(mesh.vertex_groups),
        "bones": len(bpy.data.armatures[0].bones), "bpy": ".".join(map(str, bpy.app.version)),
    }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=50_000)
    parser.add_argument("--bones", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--blender-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.blender_child:
        blender_child(args.blender_child, args.repeats)
        return
    with tempfile.TemporaryDirectory() as scratch:
        bundle = make_bundle(Path(scratch), args.vertices, args.bones)
        import numpy as np

        weights = np.load(bundle / "weights.npz")["weights"]
        env = {**os.environ, "HOME": scratch}
        done = subprocess.run([sys.executable, __file__, "--blender-child", str(bundle), "--repeats",
                               str(args.repeats)], capture_output=True, text=True, env=env, timeout=900)
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if done.returncode != 0 or not lines:
            sys.exit(f"the Blender child failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        child = json.loads(lines[-1][len(RESULT_PREFIX):])
        distinct_weights = int(len(np.unique(weights[weights > 0])))
        nonzero_weights = int((weights > 0).sum())
    seconds = sorted(child["seconds_all"])
    result = {
        "benchmark": "Import KeyDiff3D Bundle (File > Import) in bpy, headless",
        "goal": f"50k vertices, 32 bones: <= {GOAL_SECONDS} s",
        "date": datetime.date.today().isoformat(),
        "command": f".venv/bin/python benchmarks/addon_import.py --vertices {args.vertices} --bones {args.bones} "
                   f"--repeats {args.repeats}",
        "machine": machine_info(bpy=child["bpy"]),
        "bundle": {"vertices": child["vertices"], "bones": child["bones"], "vertex_groups": child["vertex_groups"],
                   "nonzero_weights": nonzero_weights, "distinct_weight_values": distinct_weights},
        "seconds_min": seconds[0], "seconds_median": seconds[len(seconds) // 2], "seconds_all": child["seconds_all"],
        "stages_seconds_median": child["stages_seconds_median"],
        "goal_met": seconds[len(seconds) // 2] <= GOAL_SECONDS,
    }
    write_result(RESULTS, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
