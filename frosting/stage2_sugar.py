"""Stage 2: SuGaR-style regularisation so the Gaussians lie flat on one surface.

First `entropy_fraction` of the iterations: opacity entropy (weight 0.1) drives opacities to 0 or 1; then
Gaussians with opacity < 0.5 are removed; the rest of the stage adds the density loss
|d(x) - exp(-½ f²/β²)| (f = distance of a sample to its Gaussian's plane, β = mean smallest scale of the 16
neighbours, d averaged over the 16 nearest Gaussians: density_factor 1/16) and the normal-alignment loss,
both on samples drawn inside visible Gaussians that sit on the rendered depth surface.
"""

from __future__ import annotations

from typing import Callable

import torch

from .config import FrostingConfig
from .field import density, gaussian_frames, shortest_axis
from .gaussians import GaussianSet
from .knn import knn
from .losses import opacity_entropy
from .optim import edit, exp_decay, make_optimizer, set_lr
from .stage1_3dgs import base_lrs, train_step
from .views import TrainViews

SAMPLING_SCALE = 1.5        # sdf_sampling_scale_factor
CLOSE_THRESHOLD = 2.0       # a Gaussian is "on the surface" when within 2 of its σ of the rendered depth


def sugar_regularize(gs: GaussianSet, views: TrainViews, cfg: FrostingConfig,
                     on_step: Callable[[int, int], None] | None = None) -> GaussianSet:
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    extent = views.extent
    optimizer = make_optimizer(gs, base_lrs(cfg, extent))
    entropy_steps = int(round(cfg.entropy_fraction * cfg.sugar_iters))
    neighbours = None
    for step in range(cfg.sugar_iters):
        set_lr(optimizer, "means", exp_decay(cfg.warmup_iters + step, cfg.warmup_iters + cfg.sugar_iters,
                                             cfg.lr_means, cfg.lr_means_final) * extent)
        if step == entropy_steps:
            opac = gs.opacities.detach()
            keep = (opac >= cfg.prune_opacity).nonzero().squeeze(1)
            min_keep = max(cfg.regularity_knn, len(gs) // 4)
            if len(keep) < min_keep:     # a too-short warm-up: keep the most opaque quarter instead
                keep = torch.topk(opac, min(min_keep, len(gs))).indices
            edit(gs, optimizer, keep)
        if step >= entropy_steps and (neighbours is None or (step - entropy_steps) % cfg.knn_every == 0):
            neighbours = knn(gs.means, gs.means, cfg.regularity_knn)
        view = int(torch.randint(len(views), (1,), generator=gen))
        loss, out = train_step(gs, views, view, cfg)
        if step < entropy_steps:
            loss = loss + cfg.entropy_weight * opacity_entropy(gs.opacities[out.visible[0]])
        else:
            dens, normal = surface_losses(gs, neighbours, out, views, view, cfg.density_samples, gen)
            loss = loss + cfg.density_weight * dens + cfg.normal_weight * normal
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step:
            on_step(step + 1, cfg.sugar_iters)
    return gs.detached()


def surface_gaussians(gs: GaussianSet, out, views: TrainViews, view: int) -> torch.Tensor:
    """Indices of Gaussians visible in `view` whose centre is near the rendered expected depth."""
    with torch.no_grad():
        vis = out.visible[0]
        uv = out.means2d[0].detach()
        col = uv[:, 0].long().clamp(0, views.width - 1)
        row = uv[:, 1].long().clamp(0, views.height - 1)
        depth_at = out.depths[0, row, col, 0]
        alpha_at = out.alphas[0, row, col, 0]
        cam = gs.means.detach() @ views.viewmats[view, :3, :3].T + views.viewmats[view, :3, 3]
        close = (cam[:, 2] - depth_at).abs() < CLOSE_THRESHOLD * gs.scales.detach().max(dim=1).values
        return (vis & close & (alpha_at > 0.5)).nonzero().squeeze(1)


def surface_losses(gs: GaussianSet, neighbours: torch.Tensor, out, views: TrainViews, view: int,
                   num_samples: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(density loss, normal loss) on `num_samples` points sampled inside surface Gaussians."""
    candidates = surface_gaussians(gs, out, views, view)
    if len(candidates) == 0:
        zero = gs.means.sum() * 0.0
        return zero, zero
    owner = candidates[torch.randint(len(candidates), (num_samples,), generator=gen).to(candidates.device)]
    rots, scales = gaussian_frames(gs.quats, gs.log_scales)
    eps = torch.randn(num_samples, 3, generator=gen).to(gs.means)
    samples = gs.means[owner] + torch.einsum("sij,sj->si", rots[owner],
                                             SAMPLING_SCALE * scales[owner] * eps).detach()
    nb = neighbours[owner]                                                                # [S, k]
    d_sum, contrib, _ = density(samples, nb, gs.means, rots, scales, gs.opacities)
    d = d_sum / nb.shape[1]                                                               # density_factor 1/k
    normals = shortest_axis(rots, scales)                                                 # [N, 3]
    n_own = normals[owner]
    f = ((samples - gs.means[owner]) * n_own).sum(-1)
    beta = scales.min(dim=-1).values[nb].mean(-1)
    target = torch.exp(-0.5 * f ** 2 / beta ** 2)
    density_loss = (d - target).abs().mean()
    n_nb = normals[nb]                                                                    # [S, k, 3]
    sign = torch.sign((n_nb * n_own[:, None]).sum(-1, keepdim=True)).detach()
    blended = torch.nn.functional.normalize((contrib.detach()[..., None] * sign * n_nb).sum(1), dim=-1)
    normal_loss = (1 - (blended * n_own).sum(-1).abs()).mean()
    return density_loss, normal_loss
