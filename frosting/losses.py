"""Losses shared by the stages: photometric 0.8·L1 + 0.2·(1-SSIM), silhouette, opacity entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DSSIM_WEIGHT = 0.2   # Frosting / 3DGS: (1 - 0.2)·L1 + 0.2·(1 - SSIM)


def _gauss_window(size: int = 11, sigma: float = 1.5, device=None) -> Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]                      # [1, 1, size, size]


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Mean SSIM of images [B, H, W, C] in [0, 1] (11x11 Gaussian window, σ 1.5, as in 3DGS)."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    ch = x.shape[1]
    win = _gauss_window(device=a.device).expand(ch, 1, -1, -1).to(a.dtype)
    pad = win.shape[-1] // 2
    blur = lambda t: F.conv2d(t, win, padding=pad, groups=ch)
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).mean()


def photometric_loss(render: Tensor, target: Tensor) -> Tensor:
    return (1 - DSSIM_WEIGHT) * (render - target).abs().mean() + DSSIM_WEIGHT * (1 - ssim(render, target))


def mask_loss(alphas: Tensor, masks: Tensor) -> Tensor:
    """L1 between rendered opacity [C, H, W, 1] and the silhouette [C, H, W]: the views are masked."""
    return (alphas[..., 0] - masks).abs().mean()


def opacity_entropy(opacities: Tensor) -> Tensor:
    """-o log o - (1-o) log(1-o), mean: pushes opacities to 0 or 1 so a hard 0.5 prune loses little."""
    o = opacities.clamp(1e-6, 1 - 1e-6)
    return (-(o * torch.log(o)) - (1 - o) * torch.log(1 - o)).mean()


def psnr(a: Tensor, b: Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else float(-10.0 * torch.log10(torch.tensor(mse)))
