"""Our own Gaussian Frosting: mesh + Gaussians bound to it, from masked orbit views; gsplat on CUDA,
our own PyTorch splatter on CPU, the same stages at two scales (presets `gpu_full`, `cpu_small`).

Public API: `run_reconstruct` (the CLI), `reconstruct` (in memory), `deform` / `load_binding` (posing),
`rasterize` / `has_cuda_rasterizer` (rendering).
"""

from .deform import Binding, PosedGaussians, deform, load_binding
from .pipeline import Reconstruction, reconstruct, run_reconstruct
from .render import has_cuda_rasterizer, rasterize

__all__ = ["Binding", "PosedGaussians", "Reconstruction", "deform", "has_cuda_rasterizer", "load_binding",
           "rasterize", "reconstruct", "run_reconstruct"]
