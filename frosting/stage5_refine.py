"""Stage 5: refine the bound Gaussians (barycentric logits, scales, rotations, opacities, SH) with the
mesh and layer frozen; one view per iteration, photometric + silhouette loss, no densification."""

from __future__ import annotations

from typing import Callable

import torch

from .config import FrostingConfig
from .gaussians import GaussianSet
from .layer import FrostedGaussians
from .losses import mask_loss, photometric_loss
from .optim import exp_decay
from .views import TrainViews


def refine(layer: FrostedGaussians, views: TrainViews, cfg: FrostingConfig,
           on_step: Callable[[int, int], None] | None = None) -> FrostedGaussians:
    """Optimise `layer`'s per-Gaussian parameters in place for `cfg.refine_iters` steps; returns it."""
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    names = {"bary_logits": cfg.lr_bary, "quats": cfg.lr_rotation, "log_scales": cfg.lr_scaling,
             "opacity_logits": cfg.lr_opacity, "sh0": cfg.lr_sh0, "shN": cfg.lr_sh0 / 20}
    groups = []
    for name, lr in names.items():
        param = torch.nn.Parameter(getattr(layer, name).detach().clone())
        setattr(layer, name, param)
        groups.append({"params": [param], "lr": lr, "name": name})
    optimizer = torch.optim.Adam(groups, eps=1e-15)
    prisms = layer.prisms().detach()                                  # the shell is frozen
    for step in range(cfg.refine_iters):
        optimizer.param_groups[0]["lr"] = exp_decay(step, cfg.refine_iters, cfg.lr_bary, cfg.lr_bary_final)
        view = int(torch.randint(len(views), (1,), generator=gen))
        sub = views.subset([view])
        gs = GaussianSet(layer.centres(prisms), layer.quats, layer.log_scales, layer.opacity_logits,
                         layer.sh0, layer.shN)
        out = gs.render(sub.viewmats, sub.Ks, views.width, views.height, background=1.0)
        loss = photometric_loss(out.colors, sub.images) + cfg.mask_weight * mask_loss(out.alphas, sub.masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step:
            on_step(step + 1, cfg.refine_iters)
    for name in names:
        setattr(layer, name, getattr(layer, name).detach())
    return layer
