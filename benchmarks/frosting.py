"""Frosting reconstruction quality and time on the real characters of ../shared/data/rigs.

Each character is scaled into the canonical cube, rendered through the 21-view SV3D orbit (training views,
backend/views/render.py) and from 4 held-out cameras (elevation 30°, azimuths 45/135/225/315°). We report
per object: Chamfer distance between the reconstructed and the true mesh with the true mesh scaled to
[-1, 1] (mean of both directions' mean nearest-point distance, 20k surface samples each), silhouette IoU and
PSNR of the frosting Gaussians on the held-out views, and wall-clock seconds per stage.

    .venv/bin/python benchmarks/frosting.py [--preset cpu_small] [--objects Fox.glb,...] [--image-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.cameras import DEFAULT_HALF_SIZE, canonical_transform, look_at_camera, orbit_center  # noqa: E402
from backend.mesh_io import load_mesh  # noqa: E402
from backend.progress import ConsoleProgress  # noqa: E402
from backend.views.render import render_orbit, render_views  # noqa: E402
from benchmarks.machine import machine_info, today  # noqa: E402
from frosting.config import get_preset  # noqa: E402
from frosting.losses import psnr  # noqa: E402
from frosting.pipeline import reconstruct  # noqa: E402
from frosting.views import train_views  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "frosting.json"
RIGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rigs"
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
DEFAULT_OBJECTS = ("Fox.glb", "single_knight_pack_KnightCharacter.glb", "animals_pack_Horse.glb",
                   "dinosaurs_pack_Trex.glb", "easy_enemies_pack_Spider.glb")


def chamfer(a_vertices, a_faces, b_vertices, b_faces, samples: int = 20000) -> float:
    pa = trimesh.sample.sample_surface(trimesh.Trimesh(a_vertices, a_faces, process=False), samples, seed=0)[0]
    pb = trimesh.sample.sample_surface(trimesh.Trimesh(b_vertices, b_faces, process=False), samples, seed=1)[0]
    return float(0.5 * (cKDTree(pb).query(pa)[0].mean() + cKDTree(pa).query(pb)[0].mean()))


def held_out_cameras(image_size: int):
    centres = orbit_center(np.array([45.0, 135.0, 225.0, 315.0]), 30.0, 2.0)
    return [look_at_camera(c, width=image_size) for c in centres]


def run_object(path: Path, preset: str, image_size: int) -> tuple[dict, dict]:
    mesh = load_mesh(path)
    mesh = mesh.transformed(canonical_transform(mesh.vertices).matrix)
    views = render_orbit(mesh, image_size=image_size)
    held = render_views(mesh, held_out_cameras(image_size))
    cfg = get_preset(preset)
    start = time.perf_counter()
    result = reconstruct(views, cfg, ConsoleProgress())
    seconds = time.perf_counter() - start
    tv = train_views(held, cfg.resolution)
    with torch.no_grad():
        out = result.layer.as_gaussian_set().render(tv.viewmats, tv.Ks, tv.width, tv.height, background=1.0)
    pred, true = out.alphas[..., 0] > 0.5, tv.masks > 0.5
    iou = float((pred & true).sum() / (pred | true).sum().clamp_min(1))
    to_unit = 1.0 / DEFAULT_HALF_SIZE                         # canonical cube [-0.6, 0.6] -> [-1, 1]
    row = {"object": path.name, "chamfer": round(chamfer(result.mesh.vertices * to_unit, result.mesh.faces,
                                                        mesh.vertices * to_unit, mesh.faces), 5),
           "iou": round(iou, 4), "psnr": round(psnr(out.colors, tv.images), 2), "seconds": round(seconds, 1),
           "stage_seconds": result.seconds, "gaussians": len(result.layer),
           "mesh_faces": int(len(result.mesh.faces))}
    return row, {"held": held, "render": out.colors, "mesh": result.mesh, "truth": mesh}


def save_picture(name: str, extra: dict, cfg_resolution: int) -> None:
    """Held-out view: source mesh | frosting Gaussians | reconstructed mesh (shaded), side by side."""
    from PIL import Image
    size = cfg_resolution
    src = Image.fromarray(extra["held"].images[0]).resize((size, size), Image.BOX)
    rec = Image.fromarray((extra["render"][0].clamp(0, 1).numpy() * 255).astype(np.uint8))
    mesh_view = render_views(extra["mesh"], [extra["held"].cameras[0]]).images[0]
    mesh_img = Image.fromarray(mesh_view).resize((size, size), Image.BOX)
    sheet = Image.new("RGB", (3 * size, size), "white")
    for i, img in enumerate((src, rec, mesh_img)):
        sheet.paste(img, (i * size, 0))
    IMAGES.mkdir(parents=True, exist_ok=True)
    sheet.resize((6 * size, 2 * size), Image.NEAREST).save(IMAGES / f"frosting_{name}.png")


def time_splatter(num_gaussians: int = 10000, size: int = 128, repeats: int = 5) -> dict:
    """Median forward+backward seconds of the CPU splatter for random small Gaussians filling the view."""
    from frosting.render import rasterize
    gen = torch.Generator().manual_seed(0)
    means = ((torch.rand(num_gaussians, 3, generator=gen) * 2 - 1) * 0.4).requires_grad_(True)
    quats = torch.randn(num_gaussians, 4, generator=gen).requires_grad_(True)
    scales = torch.full((num_gaussians, 3), 0.012).requires_grad_(True)
    opac = torch.full((num_gaussians,), 0.6).requires_grad_(True)
    colors = torch.rand(num_gaussians, 3, generator=gen).requires_grad_(True)
    viewmat = torch.eye(4)[None]
    viewmat[0, 2, 3] = 2.0
    K = torch.tensor([[[size * 1.67, 0, size / 2], [0, size * 1.67, size / 2], [0, 0, 1]]])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = rasterize(means, quats, scales, opac, colors, viewmat, K, size, size, backgrounds=torch.ones(1, 3))
        out.colors.sum().backward()
        times.append(time.perf_counter() - start)
    return {"gaussians": num_gaussians, "size": size, "median_seconds_fwd_bwd": round(float(np.median(times)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cpu_small")
    parser.add_argument("--objects", default=",".join(DEFAULT_OBJECTS))
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    if not RIGS.is_dir():
        sys.exit(f"no characters at {RIGS}: this benchmark needs ../shared/data/rigs")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    record = {"date": today(), "machine": machine_info(), "command": " ".join(["benchmarks/frosting.py"] + sys.argv[1:]),
              "preset": args.preset, "image_size": args.image_size,
              "torch_threads": get_preset(args.preset).cpu_threads or torch.get_num_threads(), "objects": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(record["torch_threads"])      # the splatter timed as reconstruct runs it
    record["splatter"] = time_splatter()
    torch.set_num_threads(threads)
    names = args.objects.split(",")
    earlier = results.get(args.preset, {}).get("objects", [])
    record["objects"] = [row for row in earlier if row["object"] not in names]   # rows of other runs stay
    results[args.preset] = record
    for i, name in enumerate(names):
        load_before = [round(x, 2) for x in os.getloadavg()]
        row, extra = run_object(RIGS / name, args.preset, args.image_size)
        row["load_average_before"] = load_before
        row["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(row), flush=True)
        record["objects"].append(row)
        if i == 0:
            save_picture(Path(name).stem, extra, get_preset(args.preset).resolution)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(RESULTS)


if __name__ == "__main__":
    main()
