"""gsplat's CUDA `rasterization()` behind our call (imported only when used: it JIT-compiles on first use)."""

from __future__ import annotations

from torch import Tensor


def gsplat_rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
                     viewmats: Tensor, Ks: Tensor, width: int, height: int, backgrounds: Tensor | None,
                     near_plane: float, far_plane: float, eps2d: float, antialiased: bool,
                     tile_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """colours [C,H,W,D], expected depth [C,H,W,1], alpha [C,H,W,1], means2d [C,N,2], visible [C,N]."""
    import gsplat

    out, alphas, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, packed=False, tile_size=tile_size,
        backgrounds=None, render_mode="RGB+ED",
        rasterize_mode="antialiased" if antialiased else "classic")
    rgb, depth = out[..., :-1], out[..., -1:]
    if backgrounds is not None:                  # composite ourselves so both backends blend identically
        rgb = rgb + (1.0 - alphas) * backgrounds[:, None, None, :]
    radii = meta["radii"]
    visible = (radii > 0).all(-1) if radii.dim() == 3 else radii > 0
    return rgb, depth, alphas, meta["means2d"], visible
