"""Time write_rigged_gltf on a 200k-vertex, 50-bone rig (goal: <= 2 s) and load_skinned_gltf on the result.

Usage: .venv/bin/python benchmarks/gltf_export.py [--vertices 200000] [--bones 50] [--repeats 3]
Writes benchmarks/results/gltf_export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.export.gltf_reader import load_skinned_gltf  # noqa: E402
from backend.export.gltf_validate import has_gltf_validator, validate_gltf  # noqa: E402
from backend.export.gltf_writer import write_rigged_gltf  # noqa: E402
from backend.mesh import Mesh  # noqa: E402
from backend.rig import Rig, SkinWeights  # noqa: E402


def make_asset(num_vertices: int, num_bones: int, seed: int = 0):
    """A grid-sphere mesh of ~num_vertices with colours, a random tree of bones and 4 random weights each."""
    rng = np.random.default_rng(seed)
    rows = int(np.sqrt(num_vertices / 2))
    cols = num_vertices // rows
    theta, phi = np.meshgrid(np.linspace(0.01, np.pi - 0.01, rows), np.linspace(0, 2 * np.pi, cols, endpoint=False), indexing="ij")
    vertices = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1).reshape(-1, 3)
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols), indexing="ij")
    a, b = r * cols + c, r * cols + (c + 1) % cols
    faces = np.concatenate([np.stack([a, b, a + cols], -1), np.stack([b, b + cols, a + cols], -1)]).reshape(-1, 3)
    colors = np.c_[rng.uniform(0, 1, (len(vertices), 3)), np.ones(len(vertices))].astype(np.float32)
    parents = np.r_[-1, [rng.integers(0, j) for j in range(1, num_bones + 1)]]
    joints = rng.normal(scale=0.5, size=(num_bones + 1, 3))
    rig = Rig(joints, parents, tuple(f"j{k}" for k in range(num_bones + 1)))
    indices = np.stack([rng.permutation(num_bones)[:4] for _ in range(64)])[rng.integers(0, 64, len(vertices))]
    weights = rng.uniform(0.05, 1.0, indices.shape)
    weights /= weights.sum(1, keepdims=True)
    return Mesh(vertices, faces.astype(np.int64), colors=colors), rig, SkinWeights(indices.astype(np.int32), weights.astype(np.float32), num_bones)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vertices", type=int, default=200_000)
    parser.add_argument("--bones", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mesh, rig, weights = make_asset(args.vertices, args.bones)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".glb", ".gltf"):
            out = Path(folder) / f"bench{suffix}"
            write_times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                write_rigged_gltf(out, mesh, rig, weights)
                write_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            load_skinned_gltf(out)
            read_time = time.perf_counter() - start
            errors = validate_gltf(out).num_errors if has_gltf_validator() else None
            runs.append({
                "format": suffix[1:], "write_seconds_min": round(min(write_times), 3),
                "write_seconds_all": [round(t, 3) for t in write_times], "read_seconds": round(read_time, 3),
                "file_megabytes": round(out.stat().st_size / 2**20, 2), "validator_errors": errors,
            })
            print(runs[-1])
    result = {
        "benchmark": f"write_rigged_gltf / load_skinned_gltf: {mesh.num_vertices} vertices, {len(mesh.faces)} faces, "
                     f"{rig.num_bones} bones, 4 influences, vertex colours",
        "goal": "write <= 2 s for 200k vertices x 50 bones",
        "date": "2026-11-25",
        "command": " ".join([".venv/bin/python", "benchmarks/gltf_export.py", *sys.argv[1:]]),
        "machine": {
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()), "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform(),
        },
        "runs": runs,
    }
    out_path = Path(__file__).resolve().parent / "results" / "gltf_export.json"
    out_path.parent.mkdir(exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
