"""What keeps CPU reconstruction time bounded must not change the picture: the splatter stops compositing a
pixel at transmittance 1e-4 exactly as gsplat (and our brute-force reference) do, Gaussians hidden behind an
opaque surface cost nothing and learn nothing, and the reconstruction runs single-threaded on CPU without
leaking that setting to the caller."""

from __future__ import annotations

import torch

from frosting import pipeline
from frosting.config import get_preset
from frosting.render import rasterize
from frosting.render.reference import reference_rasterize

W, H = 11, 9


def _stacked_scene():
    """Six wide opaque Gaussians in front of four small ones: the back ones sit where T < 1e-4."""
    dtype = torch.float64
    gen = torch.Generator().manual_seed(5)
    front = torch.cat([torch.randn(6, 2, generator=gen, dtype=dtype) * 0.02,
                       2.0 + 0.02 * torch.arange(6, dtype=dtype)[:, None]], 1)
    back = torch.cat([torch.randn(4, 2, generator=gen, dtype=dtype) * 0.02, torch.full((4, 1), 3.0, dtype=dtype)], 1)
    means = torch.cat([front, back])
    quats = torch.randn(10, 4, generator=gen, dtype=dtype)
    scales = torch.cat([torch.full((6, 3), 0.8, dtype=dtype), torch.full((4, 3), 0.04, dtype=dtype)])
    opacities = torch.cat([torch.full((6,), 0.97, dtype=dtype), torch.full((4,), 0.9, dtype=dtype)])
    colors = torch.rand(10, 3, generator=gen, dtype=dtype)
    viewmat = torch.eye(4, dtype=dtype)
    K = torch.tensor([[12.0, 0, W / 2], [0, 12.0, H / 2], [0, 0, 1]], dtype=dtype)
    return [means, quats, scales, opacities, colors], viewmat, K


def test_splatter_stops_at_transmittance_1e4_exactly_like_the_reference():
    params, viewmat, K = _stacked_scene()
    leaves = [p.clone().requires_grad_(True) for p in params]
    out = rasterize(*leaves, viewmat[None], K[None], W, H, tile_size=4)
    ref_leaves = [p.clone().requires_grad_(True) for p in params]
    rgb, depth, alpha = reference_rasterize(*ref_leaves, viewmat, K, W, H)
    torch.testing.assert_close(out.colors[0], rgb, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.alphas[0], alpha, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.depths[0], depth, atol=1e-8, rtol=0)
    target = torch.rand(H, W, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = torch.autograd.grad(((out.colors[0] - target) ** 2).sum() + out.depths[0].sum(), leaves)
    ref_grads = torch.autograd.grad(((rgb - target) ** 2).sum() + depth.sum(), ref_leaves)
    for name, g, rg in zip(["means", "quats", "scales", "opacities", "colors"], grads, ref_grads):
        torch.testing.assert_close(g, rg, atol=1e-8, rtol=1e-6, msg=f"gradient of {name}")


def test_gaussians_hidden_behind_an_opaque_surface_get_no_gradient():
    params, viewmat, K = _stacked_scene()
    colors = params[4].clone().requires_grad_(True)
    out = rasterize(*params[:4], colors, viewmat[None], K[None], W, H)
    assert out.alphas.max() > 0.999                             # the front is opaque at its centre
    out.colors.sum().backward()
    assert colors.grad[:6].abs().min() > 0                      # every front Gaussian is seen
    assert torch.all(colors.grad[6:] == 0)                      # the ones behind are skipped, as in gsplat


def test_reconstruct_runs_with_the_configured_cpu_threads_and_restores_the_callers(monkeypatch):
    seen = []
    monkeypatch.setattr(pipeline, "_reconstruct", lambda *args: seen.append(torch.get_num_threads()) or "done")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert pipeline.reconstruct(None, get_preset("tiny", cpu_threads=1)) == "done"
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
