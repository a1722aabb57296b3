"""Presets: one method, two scales. `gpu_full` follows the Frosting defaults; `cpu_small` is the same code
sized for 2 CPU cores (≤ 20k Gaussians, ~100 px, hundreds of iterations per stage; reference/frosting.md §5)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from backend.errors import KeyDiffError


@dataclass(frozen=True)
class FrostingConfig:
    resolution: int = 128             # longer image side used for training (px)
    sh_degree: int = 1
    hull_grid: int = 64               # visual-hull voxels per axis
    init_gaussians: int = 3000
    max_gaussians: int = 10000        # densification cap (stages 1-2)
    # stage 1: vanilla 3DGS warm-up
    warmup_iters: int = 300
    densify_from: int = 50
    densify_until: int = 220
    densify_every: int = 50
    densify_grad: float = 0.0002      # 3DGS threshold on the mean NDC-space gradient of the 2D centre
    opacity_reset_every: int = 3000
    mask_weight: float = 0.3
    # stage 2: SuGaR regularisation
    sugar_iters: int = 300
    entropy_fraction: float = 0.25    # Frosting: 2k of 8k iterations with the entropy term
    entropy_weight: float = 0.1
    prune_opacity: float = 0.5
    regularity_knn: int = 16
    density_samples: int = 20000
    density_weight: float = 0.2
    normal_weight: float = 0.2
    knn_every: int = 100
    # stage 3: mesh
    surface_level: float = 0.3
    level_points: int = 60000         # budget of level-set points over all views
    poisson_depth_max: int = 8
    decimate_faces: int = 5000
    min_component_fraction: float = 0.001   # specks only: unseen components go by frosting/trim.py
    # stage 4-5: frosting
    frosting_gaussians: int = 10000
    frosting_level: float = 0.01
    refine_iters: int = 300
    # learning rates (3DGS / Frosting defaults)
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_sh0: float = 0.0025
    lr_opacity: float = 0.05
    lr_scaling: float = 0.005
    lr_rotation: float = 0.001
    lr_bary: float = 0.005
    lr_bary_final: float = 0.00005
    seed: int = 0
    # torch intra-op threads on CPU while reconstructing (0: torch's default). The splatter's ops are small
    # (~1M elements); with 2 threads on 2 busy cores every op waits for the slower thread: Knight, 7 views
    # forward+backward took 28-40 s with 2 threads vs 5 s with 1 (load average 6, 2026-11-25)
    cpu_threads: int = 1


PRESETS: dict[str, FrostingConfig] = {
    "cpu_small": FrostingConfig(),
    "gpu_full": FrostingConfig(
        resolution=576, sh_degree=3, hull_grid=128, init_gaussians=20000, max_gaussians=2_000_000,
        warmup_iters=7000, densify_from=500, densify_until=6000, densify_every=100, opacity_reset_every=3000,
        sugar_iters=8000, density_samples=1_000_000, knn_every=500, level_points=10_000_000,
        poisson_depth_max=10, decimate_faces=1_000_000, min_component_fraction=0.001,
        frosting_gaussians=2_000_000, refine_iters=15000),
    # the same pipeline at test scale: seconds, for tests and smoke runs
    "tiny": FrostingConfig(
        resolution=32, sh_degree=0, hull_grid=24, init_gaussians=300, max_gaussians=800, warmup_iters=12,
        densify_from=4, densify_until=10, densify_every=4, sugar_iters=12, density_samples=1000, knn_every=4,
        level_points=4000, poisson_depth_max=6, decimate_faces=600, frosting_gaussians=600, refine_iters=10),
}


def get_preset(name: str, **overrides) -> FrostingConfig:
    if name not in PRESETS:
        raise KeyDiffError("invalid_argument", f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    try:
        return replace(PRESETS[name], **overrides)
    except TypeError as exc:
        raise KeyDiffError("invalid_argument", f"bad preset override {sorted(overrides)}: {exc}") from exc
