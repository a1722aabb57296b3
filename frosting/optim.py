"""Adam over a GaussianSet whose size changes: pruning and densifying keep the moments of kept Gaussians.

The running state is the optimizer itself plus a plain dict of gradient statistics, as in gsplat's
strategies; settings live in FrostingConfig.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .gaussians import PARAM_NAMES, GaussianSet


def make_optimizer(gs: GaussianSet, lrs: dict[str, float]) -> torch.optim.Adam:
    """Turn the set's tensors into leaf parameters (in place) and return Adam with one group per name."""
    groups = []
    for name in PARAM_NAMES:
        param = torch.nn.Parameter(getattr(gs, name).detach().clone())
        setattr(gs, name, param)
        groups.append({"params": [param], "lr": lrs.get(name, 0.0), "name": name})
    return torch.optim.Adam(groups, eps=1e-15)


def edit(gs: GaussianSet, optimizer: torch.optim.Adam, keep: Tensor, extra: GaussianSet | None = None) -> None:
    """New set = gs[keep] ++ extra; Adam moments follow kept rows, new rows start from zero."""
    for group in optimizer.param_groups:
        name = group["name"]
        old = group["params"][0]
        new_data = old.data[keep]
        if extra is not None:
            new_data = torch.cat([new_data, getattr(extra, name).detach()])
        new = torch.nn.Parameter(new_data)
        state = optimizer.state.pop(old, None)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                moment = state[key][keep]
                if extra is not None:
                    moment = torch.cat([moment, torch.zeros_like(getattr(extra, name))])
                state[key] = moment
            optimizer.state[new] = state
        group["params"][0] = new
        setattr(gs, name, new)


def exp_decay(step: int, total: int, start: float, end: float) -> float:
    """Log-linear decay from `start` to `end` over `total` steps (3DGS's position schedule)."""
    frac = min(max(step / max(total, 1), 0.0), 1.0)
    return math.exp((1 - frac) * math.log(start) + frac * math.log(end))


def set_lr(optimizer: torch.optim.Adam, name: str, lr: float) -> None:
    for group in optimizer.param_groups:
        if group["name"] == name:
            group["lr"] = lr
