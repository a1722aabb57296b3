"""Time Gaussian-distance skinning and LBS posing of a 200k-vertex mesh on a 50-bone tree.

Goal (issue #2): >= 20 M vertex·bone pairs per second on 2 cores, peak memory <= 1.5 GB.
Writes benchmarks/results/skinning.json.

    .venv/bin/python benchmarks/skinning.py [--vertices 200000] [--bones 50] [--repeats 5]

Memory is measured in a fresh subprocess (`--memory-child`): ru_maxrss after building the mesh (baseline)
and after skinning (peak), plus tracemalloc's peak of the skinning call alone (numpy reports its buffers
to tracemalloc), so the increment caused by skinning is visible apart from the interpreter and the mesh.
`make_benchmark_mesh` is importable so other benchmarks (glTF export) can time the same mesh.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from backend.errors import KeyDiffError
from machine import write_result
from backend.mesh import Mesh
from backend.posing import bone_transforms, random_rotations, skin_vertices
from backend.rig import Rig
from backend.skinning import DEFAULT_BLOCK_ELEMENTS, gaussian_distance_weights, point_segment_distances

RESULTS = Path(__file__).resolve().parent / "results" / "skinning.json"
TUBE_SIDES = 16


def make_benchmark_mesh(num_vertices: int = 200_000, num_bones: int = 50, seed: int = 0) -> tuple[Mesh, Rig]:
    """A creature-like test subject: a random tree of `num_bones` bones, each wrapped in a closed-ring tube.

    The tree grows limbs (a new joint usually extends the previous one, sometimes branches off an earlier
    joint, growing outwards) with bone lengths 0.1–0.3 and bends up to 30°; the result is scaled into the canonical cube
    [-0.6, 0.6]³. Every bone gets the same number of 16-sided rings spanning 10 % past both ends, radius a
    0.15 of its length, so tubes overlap at the joints the way limbs meet a body. num_vertices must be a
    multiple of 16 (one ring) and give each bone at least 2 rings; rings are split as evenly as possible.
    """
    rings_total, remainder = divmod(num_vertices, TUBE_SIDES)
    if remainder or rings_total < 2 * num_bones or num_bones < 1:
        raise KeyDiffError("invalid_argument", f"num_vertices must be a multiple of {TUBE_SIDES} with at least "
                           f"{2 * TUBE_SIDES} per bone, got {num_vertices} for {num_bones} bones")
    rng = np.random.default_rng(seed)
    rig = _random_tree(num_bones, rng)
    rings_per_bone = np.full(num_bones, rings_total // num_bones)
    rings_per_bone[: rings_total % num_bones] += 1
    vertices, faces, offset = [], [], 0
    for head, tail, rings in zip(rig.bone_heads, rig.bone_tails, rings_per_bone):
        tube_vertices, tube_faces = _tube(head, tail, int(rings))
        vertices.append(tube_vertices)
        faces.append(tube_faces + offset)
        offset += len(tube_vertices)
    mesh = Mesh(np.concatenate(vertices), np.concatenate(faces)).validate()
    return mesh, rig


def _random_tree(num_bones: int, rng: np.random.Generator) -> Rig:
    joints = np.zeros((num_bones + 1, 3))
    parents = np.full(num_bones + 1, -1, dtype=np.int64)
    directions = np.zeros((num_bones + 1, 3))
    directions[0] = [0.0, 0.0, 1.0]
    for j in range(1, num_bones + 1):
        parent = j - 1 if rng.random() < 0.7 else int(rng.integers(0, j))
        if parent == j - 1:                                    # extend the current limb, bending up to 30°
            axis = rng.normal(size=3)
            bend = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(0, 30)))
            direction = bend.as_matrix() @ directions[parent]
        else:                                                  # a new limb grows outwards from the body
            outwards = joints[parent] - joints[:j].mean(axis=0)
            direction = rng.normal(size=3) + 2.0 * outwards / max(np.linalg.norm(outwards), 1e-9)
        directions[j] = direction / np.linalg.norm(direction)
        joints[j] = joints[parent] + rng.uniform(0.1, 0.3) * directions[j]
        parents[j] = parent
    joints -= (joints.max(0) + joints.min(0)) / 2
    joints *= 0.6 / np.abs(joints).max() / 1.3                 # leave room for the tubes' radius
    names = tuple("root" if j == 0 else f"joint_{j:02d}" for j in range(num_bones + 1))
    return Rig(joints, parents, names)


def _tube(head: np.ndarray, tail: np.ndarray, rings: int) -> tuple[np.ndarray, np.ndarray]:
    """[rings·16, 3] vertices and the quad-strip triangles of a tube around head→tail (open ends)."""
    axis = tail - head
    length = np.linalg.norm(axis)
    unit = axis / length
    helper = np.array([1.0, 0, 0]) if abs(unit[0]) < 0.9 else np.array([0, 1.0, 0])
    side_a = np.cross(unit, helper)
    side_a /= np.linalg.norm(side_a)
    side_b = np.cross(unit, side_a)
    along = np.linspace(-0.1, 1.1, rings)[:, None, None]                         # [R, 1, 1]
    angle = np.linspace(0, 2 * np.pi, TUBE_SIDES, endpoint=False)[None, :, None]
    radius = 0.15 * length * (1.0 + 0.15 * np.sin(np.pi * along.clip(0, 1)))     # a slight bulge mid-bone
    points = head + along * axis + radius * (np.cos(angle) * side_a + np.sin(angle) * side_b)  # [R, S, 3]
    ring = np.arange(rings - 1)[:, None] * TUBE_SIDES
    side = np.arange(TUBE_SIDES)[None, :]
    a, b = ring + side, ring + (side + 1) % TUBE_SIDES
    c, d = a + TUBE_SIDES, b + TUBE_SIDES
    faces = np.stack([np.stack([a, b, d], -1), np.stack([a, d, c], -1)], axis=2).reshape(-1, 3)
    return points.reshape(-1, 3), faces.astype(np.int64)


# --- measurements -----------------------------------------------------------------------------------------
def _time(function, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def _summary(seconds: list[float], pairs: int | None = None) -> dict:
    out = {"seconds_median": round(float(np.median(seconds)), 4), "seconds_min": round(min(seconds), 4),
           "seconds_all": [round(s, 4) for s in seconds]}
    if pairs is not None:
        out["million_pairs_per_second_median"] = round(pairs / float(np.median(seconds)) / 1e6, 1)
    return out


def measure_speed(mesh: Mesh, rig: Rig, repeats: int) -> dict:
    pairs = mesh.num_vertices * rig.num_bones
    gaussian_distance_weights(mesh.vertices[:10_000], rig)                         # warm-up
    default = _time(lambda: gaussian_distance_weights(mesh.vertices, rig), repeats)
    sweep = []
    for block in (1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 21, 1 << 22):
        chunk = max(256, block // rig.num_bones)
        seconds = _time(lambda: gaussian_distance_weights(mesh.vertices, rig, chunk_size=chunk), max(2, repeats // 2))
        sweep.append({"block_elements": block, "chunk_vertices": chunk, **_summary(seconds, pairs)})
        print(json.dumps(sweep[-1]))
    distances = {}
    for dtype in (np.float32, np.float64):                                         # the [V, B] matrix itself
        seconds = _time(lambda: point_segment_distances(mesh.vertices, rig.bone_heads, rig.bone_tails,
                                                        dtype=dtype), 2)
        distances[np.dtype(dtype).name] = _summary(seconds, pairs)
    skin = gaussian_distance_weights(mesh.vertices, rig)
    rng = np.random.default_rng(1)
    poses = [random_rotations(rig.num_bones, 45.0, rng) for _ in range(repeats)]
    pose_iter = iter(poses)
    posing = _time(lambda: skin_vertices(mesh.vertices, skin, bone_transforms(rig, next(pose_iter))), repeats)
    return {"skinning_default_chunk": {"block_elements": DEFAULT_BLOCK_ELEMENTS,
                                       "chunk_vertices": max(256, DEFAULT_BLOCK_ELEMENTS // rig.num_bones),
                                       **_summary(default, pairs)},
            "skinning_chunk_sweep": sweep,
            "point_segment_distances_dense": distances,
            "lbs_posing": {"what": "bone_transforms + skin_vertices (float64, 4 influences)", **_summary(posing)}}


def memory_child(num_vertices: int, num_bones: int) -> None:
    """Run in a fresh process: print RSS before/after skinning and tracemalloc's peak of the call."""
    mesh, rig = make_benchmark_mesh(num_vertices, num_bones, 0)
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    skin = gaussian_distance_weights(mesh.vertices, rig)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_after_mesh_build_mb": round(baseline_kb / 1024, 1), "peak_rss_mb": round(peak_kb / 1024, 1),
                      "skinning_traced_peak_mb": round(traced_peak / 2**20, 1),
                      "output_mb": round((skin.indices.nbytes + skin.weights.nbytes) / 2**20, 1)}))


def measure_memory(num_vertices: int, num_bones: int) -> dict:
    command = [sys.executable, __file__, "--memory-child", "--vertices", str(num_vertices), "--bones", str(num_bones)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return {"how": "fresh subprocess: ru_maxrss (whole process: interpreter + numpy + mesh + skinning) and "
                   "tracemalloc peak during gaussian_distance_weights only", **json.loads(done.stdout.strip().splitlines()[-1])}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform(),
            "note": "2 cores shared with other jobs; numpy elementwise work is single-threaded"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=200_000)
    parser.add_argument("--bones", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.vertices, args.bones)
        return
    started = time.perf_counter()
    mesh, rig = make_benchmark_mesh(args.vertices, args.bones, 0)
    build_seconds = time.perf_counter() - started
    speed = measure_speed(mesh, rig, args.repeats)
    memory = measure_memory(args.vertices, args.bones)
    rate = speed["skinning_default_chunk"]["million_pairs_per_second_median"]
    result = {
        "benchmark": "gaussian_distance_weights (sigma 0.02 x diagonal, top-4) and LBS posing",
        "goal": ">= 20 M vertex-bone pairs/s on 2 cores, peak memory <= 1.5 GB",
        "met": {"speed": rate >= 20.0, "memory": memory["peak_rss_mb"] <= 1536},
        "date": datetime.date.today().isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "mesh": {"vertices": mesh.num_vertices, "faces": int(mesh.faces.shape[0]), "bones": rig.num_bones,
                 "layout": "random 50-bone limb tree, a 16-sided tube per bone (make_benchmark_mesh, seed 0)",
                 "build_seconds": round(build_seconds, 3)},
        **speed,
        "memory": memory,
    }
    print(json.dumps({k: result[k] for k in ("met", "skinning_default_chunk", "lbs_posing", "memory")}, indent=2))
    write_result(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
