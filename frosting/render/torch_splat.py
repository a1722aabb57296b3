"""Our CPU rasterizer: tiled front-to-back alpha compositing of projected Gaussians, all in PyTorch autograd.

Layout (why it is fast enough on 2 cores): every (Gaussian, tile) overlap becomes one row, rows are sorted by
tile then depth, and each row is evaluated on all pixels of its tile at once ([pairs, tile²] tensors). The
per-pixel transmittance is a *segmented* exclusive cumulative product, computed as a cumsum of log(1 - alpha)
minus the sum at the start of the tile's segment; results are scattered back with index_add.
No Python loop runs over pixels or Gaussians, and autograd gives exact gradients for every input.

Cost is bounded by the work that changes the picture, in two passes:
1. without autograd, every row's alphas and transmittances are computed once; a pixel stops accepting
   Gaussians as soon as the next one would take its transmittance to T_MIN = 1e-4 or below (gsplat's and
   3DGS's early termination, same rule), and rows that add nothing to any pixel of their tile are dropped:
   rows hidden behind an opaque surface, and rows whose box touches the tile but whose ellipse does not;
2. the differentiable pass runs on the surviving rows only.
Compositing rules follow gsplat (alpha <= 0.999, alpha < 1/255 dropped, stop before T <= 1e-4).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .projection import T_MIN, Projection, pixel_alpha


def composite(proj: Projection, colors: Tensor, width: int, height: int, backgrounds: Tensor | None = None,
              tile_size: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Render C cameras: colours [C, H, W, D], expected depth [C, H, W, 1], alpha [C, H, W, 1].

    colors: [N, D] or [C, N, D] post-activation; backgrounds: [C, D] or None (black).
    """
    num_cams = proj.means2d.shape[0]
    if colors.dim() == 2:
        colors = colors[None].expand(num_cams, -1, -1)
    outs = [_composite_one(proj, cam, colors[cam], width, height, tile_size) for cam in range(num_cams)]
    rgb = torch.stack([o[0] for o in outs])
    depth = torch.stack([o[1] for o in outs])
    alpha = torch.stack([o[2] for o in outs])
    if backgrounds is not None:
        rgb = rgb + (1.0 - alpha) * backgrounds[:, None, None, :]
    return rgb, depth, alpha


def _composite_one(proj: Projection, cam: int, colors: Tensor, width: int, height: int,
                   tile: int) -> tuple[Tensor, Tensor, Tensor]:
    device, dim = colors.device, colors.shape[-1]
    tiles_x, tiles_y = -(-width // tile), -(-height // tile)
    pixels_per_tile = tile * tile
    ids = proj.visible[cam].nonzero().squeeze(1)                          # [G] visible Gaussians
    if len(ids) == 0:                                                     # nothing on screen: empty image
        zeros = proj.means2d.new_zeros(height, width, 1) + 0.0 * colors.sum()
        return zeros.expand(height, width, dim), zeros, zeros
    means2d, conics, opacities = proj.means2d[cam], proj.conics[cam], proj.opacities[cam]
    with torch.no_grad():
        pair_g, pair_tile, px, py = _pairs(means2d[ids], proj.extents[cam, ids], proj.depths[cam, ids],
                                           tile, tiles_x, tiles_y)
        pair_g = ids[pair_g]
        # pass 1: which (row, pixel) entries survive the 1/255 cut and early termination
        delta = torch.stack([px, py], dim=-1) - means2d[pair_g][:, None, :]               # [P, T², 2]
        alpha = pixel_alpha(delta, conics[pair_g][:, None, :], opacities[pair_g][:, None])  # [P, T²]
        log_t = torch.log1p(-alpha.double())
        after = _segment_cumsum(log_t, _segment_starts(pair_tile), inclusive=True)      # log T after the row
        live = (alpha > 0) & (after > torch.log(torch.tensor(T_MIN, dtype=torch.float64)))   # [P, T²]
        keep = live.any(1).nonzero().squeeze(1)
        pair_g, pair_tile, px, py, live = pair_g[keep], pair_tile[keep], px[keep], py[keep], live[keep]
        seg_start = _segment_starts(pair_tile)

    # pass 2: the differentiable composite of the surviving rows
    delta = torch.stack([px, py], dim=-1) - means2d[pair_g][:, None, :]                   # [P', T², 2]
    alpha = pixel_alpha(delta, conics[pair_g][:, None, :], opacities[pair_g][:, None])
    alpha = torch.where(live, alpha, torch.zeros_like(alpha))
    log_t = torch.log1p(-alpha.double())                                                  # [P', T²]
    trans = torch.exp(_segment_cumsum(log_t, seg_start, inclusive=False)).to(alpha.dtype)  # exclusive T
    weights = alpha * trans                                                               # [P', T²]

    # one scatter of weight x (colour, depth, 1): [P', T², D + 2] summed into the row's tile; Σ w = 1 - T_final
    num_tiles = tiles_x * tiles_y
    features = torch.cat([colors[pair_g], proj.depths[cam, pair_g][:, None],
                          torch.ones_like(proj.depths[cam, pair_g][:, None])], dim=-1)   # [P', D + 2]
    per_pair = weights[:, :, None] * features[:, None, :]
    acc = torch.zeros(num_tiles, pixels_per_tile, dim + 2, dtype=per_pair.dtype, device=device)
    acc = acc.index_add(0, pair_tile, per_pair)
    acc_rgb, acc_depth, acc_alpha = acc[..., :dim], acc[..., dim], acc[..., dim + 1]

    rgb = _untile(acc_rgb, tiles_x, tiles_y, tile, width, height)
    alpha_img = _untile(acc_alpha[..., None], tiles_x, tiles_y, tile, width, height)
    depth_sum = _untile(acc_depth[..., None], tiles_x, tiles_y, tile, width, height)
    depth = depth_sum / alpha_img.clamp_min(1e-10)                        # expected depth, as gsplat's "ED"
    return rgb, depth, alpha_img


def _pairs(means2d: Tensor, extents: Tensor, depths: Tensor, tile: int, tiles_x: int,
           tiles_y: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rows (Gaussian, tile) sorted tile-major then front to back, and their pixel centres.

    means2d [G, 2], extents [G, 2], depths [G] -> local Gaussian index [P], tile [P], px [P, T²], py [P, T²].
    """
    device = means2d.device
    m = means2d.detach()
    lo = torch.floor((m - extents - 0.5) / tile).long()                   # [G, 2] first tile (x, y)
    hi = torch.floor((m + extents - 0.5) / tile).long()                   # [G, 2] last tile
    lo[:, 0].clamp_(0, tiles_x - 1), lo[:, 1].clamp_(0, tiles_y - 1)
    hi[:, 0].clamp_(0, tiles_x - 1), hi[:, 1].clamp_(0, tiles_y - 1)
    span = (hi - lo + 1).clamp_min(0)                                     # [G, 2]
    counts = span[:, 0] * span[:, 1]                                      # [G]
    pair_g = torch.repeat_interleave(torch.arange(len(m), device=device), counts)   # [P]
    first = torch.cumsum(counts, 0) - counts
    k = torch.arange(len(pair_g), device=device) - first[pair_g]
    pair_tx = lo[pair_g, 0] + k % span[pair_g, 0]
    pair_ty = lo[pair_g, 1] + k // span[pair_g, 0].clamp_min(1)
    pair_tile = pair_ty * tiles_x + pair_tx                               # [P]
    # one sort on (tile, depth rank); stable, so equal depths keep index order
    rank = torch.empty(len(m), dtype=torch.long, device=device)
    rank[torch.argsort(depths.detach(), stable=True)] = torch.arange(len(m), device=device)
    order = torch.argsort(pair_tile * len(m) + rank[pair_g])
    pair_g, pair_tile = pair_g[order], pair_tile[order]
    pair_tx, pair_ty = pair_tx[order], pair_ty[order]
    offs = torch.arange(tile * tile, device=device)
    px = (pair_tx[:, None] * tile + offs % tile).to(m.dtype) + 0.5        # [P, T²]
    py = (pair_ty[:, None] * tile + offs // tile).to(m.dtype) + 0.5
    return pair_g, pair_tile, px, py


def _segment_starts(pair_tile: Tensor) -> Tensor:
    """[P] index of the first row of each row's tile (rows are sorted by tile)."""
    is_start = torch.ones_like(pair_tile, dtype=torch.bool)
    is_start[1:] = pair_tile[1:] != pair_tile[:-1]
    rows = torch.arange(len(pair_tile), device=pair_tile.device)
    return torch.cummax(torch.where(is_start, rows, 0), 0)[0]


def _segment_cumsum(values: Tensor, seg_start: Tensor, inclusive: bool) -> Tensor:
    """Cumulative sum [P, T²] of `values` restarted at each segment (inclusive or exclusive of the row)."""
    csum = torch.cumsum(values, 0)
    before = torch.cat([torch.zeros_like(csum[:1]), csum[:-1]])           # exclusive running sum
    return (csum if inclusive else before) - before[seg_start]


def _untile(values: Tensor, tiles_x: int, tiles_y: int, tile: int, width: int, height: int) -> Tensor:
    """[tiles, T², D] -> image [H, W, D] (crop of the tile-padded canvas)."""
    dim = values.shape[-1]
    img = values.reshape(tiles_y, tiles_x, tile, tile, dim).permute(0, 2, 1, 3, 4)
    return img.reshape(tiles_y * tile, tiles_x * tile, dim)[:height, :width]
