"""The CPU splatter must render exactly what a brute-force per-pixel compositor renders, with the same
gradients, so every frosting stage optimises the real 3DGS image model on machines without CUDA."""

from __future__ import annotations

import math

import pytest
import torch

from backend.errors import KeyDiffError
from frosting.render import has_cuda_rasterizer, rasterize
from frosting.render.projection import covariances, project
from frosting.render.reference import reference_rasterize

W, H = 19, 14


def _scene(seed: int = 0, n: int = 10, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=gen, dtype=dtype) * 0.3
    quats = torch.randn(n, 4, generator=gen, dtype=dtype)
    scales = torch.rand(n, 3, generator=gen, dtype=dtype) * 0.12 + 0.03
    opacities = torch.rand(n, generator=gen, dtype=dtype) * 0.85 + 0.1
    colors = torch.rand(n, 3, generator=gen, dtype=dtype)
    viewmat = torch.eye(4, dtype=dtype)
    viewmat[:3, :3] = torch.tensor([[0.0, 1, 0], [0, 0, -1], [-1, 0, 0]], dtype=dtype)  # a tilted look
    viewmat[2, 3] = 2.5
    K = torch.tensor([[24.0, 0, W / 2], [0, 24.0, H / 2], [0, 0, 1]], dtype=dtype)
    return means, quats, scales, opacities, colors, viewmat, K


@pytest.mark.parametrize("tile_size", [4, 16])
def test_splatter_matches_per_pixel_reference_rgb_depth_alpha(tile_size):
    means, quats, scales, opacities, colors, viewmat, K = _scene()
    out = rasterize(means, quats, scales, opacities, colors, viewmat[None], K[None], W, H, tile_size=tile_size)
    rgb, depth, alpha = reference_rasterize(means, quats, scales, opacities, colors, viewmat, K, W, H)
    assert alpha.max() > 0.5 and (alpha < 1e-6).any()        # the scene has covered and empty pixels
    torch.testing.assert_close(out.colors[0], rgb, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.alphas[0], alpha, atol=1e-10, rtol=0)
    covered = alpha > 1e-3
    torch.testing.assert_close(out.depths[0][covered], depth[covered], atol=1e-8, rtol=0)


def test_splatter_gradients_match_reference_for_every_parameter():
    params = list(_scene(seed=3, n=8))
    leaves = [p.clone().requires_grad_(True) for p in params[:5]]
    target = torch.rand(H, W, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)

    def loss(out_rgb, out_depth, out_alpha):
        return ((out_rgb - target) ** 2).sum() + (out_depth * out_alpha).sum() * 0.1 + out_alpha.sum()

    out = rasterize(*leaves, params[5][None], params[6][None], W, H, tile_size=8)
    grads = torch.autograd.grad(loss(out.colors[0], out.depths[0], out.alphas[0]), leaves)
    ref_leaves = [p.clone().requires_grad_(True) for p in params[:5]]
    ref = reference_rasterize(*ref_leaves, params[5], params[6], W, H)
    ref_grads = torch.autograd.grad(loss(*ref), ref_leaves)
    for name, g, rg in zip(["means", "quats", "scales", "opacities", "colors"], grads, ref_grads):
        assert rg.abs().max() > 0, name
        torch.testing.assert_close(g, rg, atol=1e-8, rtol=1e-6, msg=f"gradient of {name}")


def test_background_fills_exactly_the_uncovered_fraction():
    means, quats, scales, opacities, colors, viewmat, K = _scene(seed=1)
    bg = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    black = rasterize(means, quats, scales, opacities, colors, viewmat[None], K[None], W, H)
    white = rasterize(means, quats, scales, opacities, colors, viewmat[None], K[None], W, H, backgrounds=bg)
    torch.testing.assert_close(white.colors - black.colors, (1 - black.alphas).expand_as(black.colors))


def test_isotropic_gaussian_projects_to_focal_times_scale_over_depth():
    means = torch.tensor([[0.1, -0.05, 0.0]])
    covars = covariances(torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.04))
    viewmat = torch.eye(4)[None]
    viewmat[0, 2, 3] = 2.0
    K = torch.tensor([[[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]])
    proj = project(means, covars, torch.tensor([0.9]), viewmat, K, 64, 64, eps2d=0.0)
    torch.testing.assert_close(proj.means2d[0, 0], torch.tensor([32 + 100 * 0.1 / 2, 32 - 100 * 0.05 / 2]))
    sigma_px = 100 * 0.04 / 2.0                       # the Jacobian's off-axis terms add ~0.3% here
    assert abs(1 / math.sqrt(proj.conics[0, 0, 0]) - sigma_px) < 0.02 * sigma_px


def test_gaussians_behind_the_camera_are_not_drawn():
    means, quats, scales, opacities, colors, viewmat, K = _scene()
    viewmat = viewmat.clone()
    viewmat[2, 3] = -2.5                               # the whole scene is now behind the camera
    out = rasterize(means, quats, scales, opacities, colors, viewmat[None], K[None], W, H)
    assert not out.visible.any() and out.alphas.abs().max() == 0


def test_means2d_gradient_is_available_for_densification():
    means, quats, scales, opacities, colors, viewmat, K = [t.float() for t in _scene()]
    means.requires_grad_(True)
    out = rasterize(means, quats, scales, opacities, colors, viewmat[None], K[None], W, H)
    out.colors.sum().backward()
    assert out.means2d.grad is not None and out.means2d.grad[out.visible].abs().sum() > 0


def test_bad_shapes_raise_invalid_argument():
    means, quats, scales, opacities, colors, viewmat, K = _scene()
    with pytest.raises(KeyDiffError) as err:
        rasterize(means, quats[:3], scales, opacities, colors, viewmat[None], K[None], W, H)
    assert err.value.code == "invalid_argument" and "quats" in err.value.message


def test_gsplat_backend_requested_without_cuda_names_missing_dependency():
    if has_cuda_rasterizer():
        pytest.skip("this machine has CUDA + gsplat; the error path is for CPU-only machines")
    means, quats, scales, opacities, colors, viewmat, K = _scene()
    with pytest.raises(KeyDiffError) as err:
        rasterize(means, quats, scales, opacities, colors, viewmat[None], K[None], W, H, backend="gsplat")
    assert err.value.code == "missing_dependency"


@pytest.mark.skipif(not has_cuda_rasterizer(), reason="needs CUDA and gsplat")
def test_gsplat_and_torch_backends_agree_on_cuda():
    means, quats, scales, opacities, colors, viewmat, K = [t.float().cuda() for t in _scene()]
    a = rasterize(means, quats, scales, opacities, colors, viewmat[None], K[None], W, H, backend="gsplat")
    b = rasterize(means, quats, scales, opacities, colors, viewmat[None], K[None], W, H, backend="torch")
    torch.testing.assert_close(a.colors, b.colors, atol=2e-3, rtol=0)
    torch.testing.assert_close(a.alphas, b.alphas, atol=2e-3, rtol=0)
