"""The whole reconstruction: views folder in, mesh + bound Gaussians out (what `keydiff3d reconstruct` runs)."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from backend.atomic import atomic_output_folder, check_replaceable
from backend.errors import KeyDiffError
from backend.mesh import Mesh
from backend.progress import Progress, SilentProgress
from backend.views.viewset import ViewSet

from .config import FrostingConfig, get_preset
from .export import save_frosting, save_mesh
from .gaussians import GaussianSet
from .hull import hull_gaussians
from .layer import FrostedGaussians, build_layer
from .stage1_3dgs import warmup
from .stage2_sugar import sugar_regularize
from .stage3_mesh import extract_mesh
from .stage5_refine import refine
from .views import train_views


@dataclass
class Reconstruction:
    mesh: Mesh
    layer: FrostedGaussians
    vanilla: GaussianSet                         # stage-1 Gaussians
    sugar: GaussianSet                           # stage-2 Gaussians
    seconds: dict[str, float] = field(default_factory=dict)


def reconstruct(views: ViewSet, cfg: FrostingConfig, progress: Progress | None = None,
                device: str = "cpu") -> Reconstruction:
    """Run stages 0-5 on a ViewSet in memory."""
    progress = progress or SilentProgress()
    if device != "cpu" and not torch.cuda.is_available():
        raise KeyDiffError("invalid_argument", f"device {device!r} requested but CUDA is not available; use 'cpu'")
    with _cpu_threads(cfg.cpu_threads if device == "cpu" else 0):
        return _reconstruct(views, cfg, progress, device)


@contextmanager
def _cpu_threads(count: int):
    """Run with `count` torch threads (0: unchanged) and restore the caller's setting afterwards."""
    before = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _reconstruct(views: ViewSet, cfg: FrostingConfig, progress: Progress, device: str) -> Reconstruction:
    torch.manual_seed(cfg.seed)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def tick(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 2)
        clock = now

    def bar(name: str):
        return lambda step, total: progress.stage(name, step / total, f"{step}/{total}")

    tv = train_views(views, cfg.resolution).to(device)   # every stage follows the device of its tensors
    progress.stage("init", 0.0, "visual hull")
    gs = hull_gaussians(tv, cfg.init_gaussians, cfg.sh_degree, cfg.hull_grid, seed=cfg.seed)
    progress.stage("init", 1.0, f"{len(gs)} Gaussians")
    tick("init")
    vanilla = warmup(gs, tv, cfg, bar("3dgs"))
    tick("3dgs")
    sugar = sugar_regularize(vanilla.detached(), tv, cfg, bar("sugar"))
    tick("sugar")
    progress.stage("mesh", 0.0, "level-set points + Poisson")
    mesh, _ = extract_mesh(sugar, tv, cfg)
    progress.stage("mesh", 1.0, f"{mesh.num_vertices} vertices, {len(mesh.faces)} faces")
    tick("mesh")
    progress.stage("frosting", 0.0, "layer thickness")
    layer = build_layer(mesh, sugar, vanilla, cfg.frosting_gaussians, cfg.frosting_level, tv.extent, cfg.seed)
    progress.stage("frosting", 1.0, f"{len(layer)} bound Gaussians")
    tick("frosting")
    layer = refine(layer, tv, cfg, bar("refine"))
    tick("refine")
    return Reconstruction(mesh, layer, vanilla, sugar, seconds)


def run_reconstruct(views_dir: str | Path, out_dir: str | Path, *, preset: str = "cpu_small",
                    device: str = "cpu", progress: Progress | None = None) -> Path:
    """`keydiff3d reconstruct VIEWS_DIR -o OUT [--preset cpu_small]`.

    Reads a ViewSet folder, writes OUT/{mesh.ply, mesh.glb, gaussians.ply, binding.npz, frosting.json}
    atomically (a temporary folder renamed into place; an existing OUT is replaced only on success).
    Returns OUT.
    """
    cfg = get_preset(preset)
    check_replaceable(Path(out_dir).expanduser().absolute(), "frosting.json", "frosting reconstruction")
    views = ViewSet.load(views_dir)
    result = reconstruct(views, cfg, progress, device)
    out = Path(out_dir)
    with atomic_output_folder(out, marker="frosting.json", what="frosting reconstruction") as tmp:
        save_mesh(result.mesh, tmp)
        save_frosting(result.layer, tmp)
        info = {"format": "keydiff3d.frosting", "version": 1, "preset": preset, "device": device,
                "views": len(views), "gaussians": len(result.layer), "vertices": result.mesh.num_vertices,
                "faces": int(len(result.mesh.faces)), "seconds": result.seconds}
        (tmp / "frosting.json").write_text(json.dumps(info, indent=1))
    return out
