"""Stage 1: vanilla 3DGS warm-up with adaptive density control (clone small, split large, prune faint).

One random training view per iteration, white background, photometric + silhouette loss. Densification
uses the mean screen-space gradient of each Gaussian's 2D centre in NDC units (threshold 2e-4, as in 3DGS);
Gaussians larger than 1% of the scene extent split into two, smaller ones are cloned.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .config import FrostingConfig
from .gaussians import GaussianSet
from .losses import mask_loss, photometric_loss
from .optim import edit, exp_decay, make_optimizer, set_lr
from .render.projection import quat_to_rotmat
from .views import TrainViews

PERCENT_DENSE = 0.01
MIN_OPACITY = 0.005


def base_lrs(cfg: FrostingConfig, extent: float) -> dict[str, float]:
    return {"means": cfg.lr_means * extent, "quats": cfg.lr_rotation, "log_scales": cfg.lr_scaling,
            "opacity_logits": cfg.lr_opacity, "sh0": cfg.lr_sh0, "shN": cfg.lr_sh0 / 20}


def train_step(gs: GaussianSet, views: TrainViews, view: int, cfg: FrostingConfig):
    """Render one view and return (loss, rendering) with the photometric + mask loss."""
    sub = views.subset([view])
    out = gs.render(sub.viewmats, sub.Ks, views.width, views.height, background=1.0)
    loss = photometric_loss(out.colors, sub.images) + cfg.mask_weight * mask_loss(out.alphas, sub.masks)
    return loss, out


def warmup(gs: GaussianSet, views: TrainViews, cfg: FrostingConfig,
           on_step: Callable[[int, int], None] | None = None) -> GaussianSet:
    """Optimise `gs` for `cfg.warmup_iters` iterations with densification; returns the trained set."""
    gen = torch.Generator().manual_seed(cfg.seed)
    extent = views.extent
    optimizer = make_optimizer(gs, base_lrs(cfg, extent))
    stats = _fresh_stats(gs)
    for step in range(cfg.warmup_iters):
        set_lr(optimizer, "means", exp_decay(step, cfg.warmup_iters, cfg.lr_means, cfg.lr_means_final) * extent)
        view = int(torch.randint(len(views), (1,), generator=gen))
        loss, out = train_step(gs, views, view, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _accumulate(stats, out, views)
        optimizer.step()
        if cfg.densify_from <= step < cfg.densify_until and (step + 1) % cfg.densify_every == 0:
            densify_and_prune(gs, optimizer, stats, cfg, extent, gen)
            stats = _fresh_stats(gs)
        if (step + 1) % cfg.opacity_reset_every == 0 and step + 1 < cfg.densify_until:
            with torch.no_grad():
                gs.opacity_logits.clamp_(max=math.log(0.01 / 0.99))
        if on_step:
            on_step(step + 1, cfg.warmup_iters)
    return gs.detached()


def _fresh_stats(gs: GaussianSet) -> dict:
    return {"grad": torch.zeros_like(gs.opacity_logits.detach()), "count": torch.zeros_like(gs.opacity_logits.detach())}


def _accumulate(stats: dict, out, views: TrainViews) -> None:
    grad = out.means2d.grad
    if grad is None:
        return
    ndc = grad[0] * torch.tensor([views.width / 2.0, views.height / 2.0], device=grad.device)     # pixels -> NDC units
    vis = out.visible[0]
    stats["grad"][vis] += ndc[vis].norm(dim=-1)
    stats["count"][vis] += 1


@torch.no_grad()
def densify_and_prune(gs: GaussianSet, optimizer, stats: dict, cfg: FrostingConfig, extent: float,
                      gen: torch.Generator) -> None:
    mean_grad = stats["grad"] / stats["count"].clamp_min(1)
    big = gs.scales.max(dim=1).values > PERCENT_DENSE * extent
    hot = mean_grad >= cfg.densify_grad
    room = max(cfg.max_gaussians - len(gs), 0)
    clone, split = hot & ~big, hot & big
    # respect the cap: each candidate adds one Gaussian, so keep the `room` hottest
    if int(hot.sum()) > room:
        ranked = torch.where(hot, mean_grad, torch.full_like(mean_grad, -1.0))
        allowed = torch.zeros_like(hot)
        allowed[torch.topk(ranked, room).indices] = True
        clone &= allowed
        split &= allowed
    new_parts = []
    if clone.any():
        new_parts.append(gs.subset(clone).detached())
    if split.any():
        src = gs.subset(split).detached()
        rot = quat_to_rotmat(src.quats)
        offsets = (rot @ (torch.randn(len(src), 3, 1, generator=gen).to(src.means) * src.scales[..., None])).squeeze(-1)
        shrink = math.log(1.6)
        moved = GaussianSet(src.means + offsets, src.quats, src.log_scales - shrink, src.opacity_logits,
                            src.sh0, src.shN)
        new_parts.append(moved)
        with torch.no_grad():                        # the original becomes the other half, shrunk
            gs.log_scales.data[split] -= shrink
    if new_parts:
        extra = GaussianSet(*[torch.cat([getattr(p, n) for p in new_parts]) for n in
                              ("means", "quats", "log_scales", "opacity_logits", "sh0", "shN")])
        edit(gs, optimizer, torch.arange(len(gs), device=gs.means.device), extra)
    too_big = gs.scales.max(dim=1).values > 0.1 * extent
    faint = gs.opacities < MIN_OPACITY
    keep = ~(too_big | faint)
    if not keep.all() and keep.sum() >= 4:
        edit(gs, optimizer, keep.nonzero().squeeze(1))
