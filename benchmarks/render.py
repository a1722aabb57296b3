"""Time the CPU orbit renderer: 21 views of a ~20k-face mesh at 128, 256 and 576 px.

Goal (issue #3): 21 views at 256 px in <= 3 s on 2 cores. Writes benchmarks/results/render.json; when
../shared/data is present also times real characters and redraws docs/images/orbit_contact_sheet.png.

    .venv/bin/python benchmarks/render.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from machine import machine_info, write_result
import trimesh

from backend.mesh import Mesh
from backend.views.render import RenderSettings, render_orbit

RESULTS = Path(__file__).resolve().parent / "results" / "render.json"
RIGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rigs"
CHARACTERS = ("single_knight_pack_KnightCharacter.glb", "Fox.glb", "animals_pack_Horse.glb")
SHEET = Path(__file__).resolve().parents[1] / "docs" / "images" / "orbit_contact_sheet.png"
SHEET_FRAMES = (20, 2, 5, 8, 11, 14, 17)


def bumpy_sphere() -> Mesh:
    """20,480 faces with vertex colours: an icosphere (subdivision 5) with a deterministic bumpy surface."""
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.45)
    v = np.asarray(sphere.vertices)
    bump = 1.0 + 0.08 * np.sin(7 * v[:, 0]) * np.cos(5 * v[:, 1]) * np.sin(9 * v[:, 2])
    colors = np.concatenate([(v / 0.9 + 0.5).clip(0, 1), np.ones((len(v), 1))], axis=1).astype(np.float32)
    return Mesh(vertices=v * bump[:, None], faces=np.asarray(sphere.faces, np.int64), colors=colors)


def real_characters() -> list[dict]:
    """Time 21 views at 256 px of real characters (canonical frame, 2x2 supersampling) and write the docs'
    contact sheet of a few orbit frames; skipped when ../shared/data is absent."""
    from PIL import Image

    from backend.cameras import canonical_transform
    from backend.mesh_io import load_mesh
    from backend.views.viewset import contact_sheet

    if not RIGS.is_dir():
        return []
    runs, rows = [], []
    for name in CHARACTERS:
        mesh = load_mesh(RIGS / name)
        mesh = mesh.transformed(canonical_transform(mesh.vertices).matrix)
        start = time.perf_counter()
        views = render_orbit(mesh, image_size=256, settings=RenderSettings(supersample=2))
        runs.append({"mesh": name, "faces": int(mesh.faces.shape[0]), "image_size": 256, "views": len(views),
                     "supersample": 2, "seconds": round(time.perf_counter() - start, 3)})
        print(json.dumps(runs[-1]))
        rows.append(contact_sheet(views.subset(list(SHEET_FRAMES)), columns=len(SHEET_FRAMES)))
    SHEET.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows)).save(SHEET, optimize=True)
    return runs


def machine() -> dict:
    from importlib.metadata import version

    return machine_info(trimesh=trimesh.__version__, embreex=version("embreex"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    info = machine()
    mesh = bumpy_sphere()
    render_orbit(mesh, image_size=64, frames=[0])            # warm-up: imports, Embree BVH code paths
    runs = []
    for size, supersample in [(128, 1), (256, 1), (576, 1), (256, 2)]:
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            views = render_orbit(mesh, image_size=size, settings=RenderSettings(supersample=supersample))
            seconds.append(time.perf_counter() - start)
        runs.append({"image_size": size, "views": len(views), "supersample": supersample,
                     "faces": int(mesh.faces.shape[0]), "seconds_min": round(min(seconds), 3),
                     "seconds_median": round(float(np.median(seconds)), 3),
                     "seconds_all": [round(s, 3) for s in seconds],
                     "object_pixels_per_view": int(views.masks.sum() / len(views))})
        print(json.dumps(runs[-1]))
    characters = real_characters()
    result = {"benchmark": "render_orbit: 21 SV3D-p orbit views of a 20,480-face vertex-coloured mesh",
              "goal": "21 views at 256 px <= 3 s on 2 cores", "date": datetime.date.today().isoformat(),
              "command": " ".join([os.path.relpath(sys.executable), *sys.argv]), "machine": info, "runs": runs,
              "real_characters": characters, "contact_sheet": str(SHEET.relative_to(RESULTS.parents[2]))}
    write_result(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
