"""Frosting stages on a tiny scene (a coloured sphere seen from the 21-view orbit at 32 px): each stage
runs and does its job, the mesh is watertight, and posed Gaussians stay inside their prisms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import ConvexHull

from backend.errors import KeyDiffError
from backend.mesh import Mesh
from backend.views.render import has_embree, render_orbit
from frosting import deform, load_binding, run_reconstruct
from frosting.config import get_preset
from frosting.deform import binding_from_layer
from frosting.export import save_frosting, save_mesh
from frosting.gaussians import GaussianSet, load_ply, save_ply
from frosting.hull import hull_gaussians
from frosting.layer import build_layer
from frosting.losses import mask_loss, photometric_loss
from frosting.stage1_3dgs import warmup
from frosting.stage2_sugar import sugar_regularize
from frosting.stage3_mesh import SurfacePoints, extract_mesh, level_set_points, poisson_mesh
from frosting.stage5_refine import refine
from frosting.views import train_views

pytestmark = pytest.mark.skipif(not has_embree(), reason="the orbit renderer needs embreex")
RADIUS = 0.35


@pytest.fixture(scope="module")
def sphere_views():
    s = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS)
    colors = np.concatenate([(s.vertices * 1.2 + 0.5).clip(0, 1), np.ones((len(s.vertices), 1))], 1)
    return render_orbit(Mesh(vertices=s.vertices, faces=s.faces, colors=colors.astype(np.float32)), image_size=32)


@pytest.fixture(scope="module")
def cfg():
    return get_preset("tiny")


@pytest.fixture(scope="module")
def stages(sphere_views, cfg):
    """Stages 0-2 once for the module (each checked in its own test)."""
    torch.manual_seed(0)
    tv = train_views(sphere_views, cfg.resolution)
    init = hull_gaussians(tv, cfg.init_gaussians, cfg.sh_degree, cfg.hull_grid)
    vanilla = warmup(init.detached(), tv, cfg)
    sugar = sugar_regularize(vanilla.detached(), tv, cfg)
    return tv, init, vanilla, sugar


@torch.no_grad()
def _loss(gs, tv):
    """Photometric + mask loss over 7 of the 21 views (every third)."""
    sub = tv.subset(list(range(0, len(tv), 3)))
    out = gs.render(sub.viewmats, sub.Ks, sub.width, sub.height)
    return float(photometric_loss(out.colors, sub.images) + mask_loss(out.alphas, sub.masks))


def test_visual_hull_seeds_gaussians_on_the_object_surface(stages):
    _, init, _, _ = stages
    radii = init.means.norm(dim=1)
    # surface voxels of the hull of a sphere: near the sphere, never far outside (hull ⊇ object)
    assert 0.8 * RADIUS < float(radii.median()) < 1.35 * RADIUS
    assert float(radii.max()) < 2.0 * RADIUS


def test_warmup_lowers_the_loss_and_densifies(stages, cfg):
    tv, init, vanilla, _ = stages
    assert _loss(vanilla, tv) < _loss(init, tv)
    assert len(init) < len(vanilla) <= cfg.max_gaussians


def test_sugar_stage_prunes_faint_gaussians_and_keeps_the_picture(stages, cfg):
    tv, _, vanilla, sugar = stages
    assert len(sugar) < len(vanilla)                        # the hard 0.5-opacity prune removed some
    assert _loss(sugar, tv) < 1.5 * _loss(vanilla, tv)


@pytest.fixture(scope="module")
def extracted(stages, cfg):
    tv, _, _, sugar = stages
    return extract_mesh(sugar, tv, cfg)


def test_mesh_extraction_gives_a_surface_near_the_sphere(extracted, cfg):
    mesh, surface = extracted
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(np.median(r) - RADIUS) < 0.25 * RADIUS
    assert len(mesh.faces) <= cfg.decimate_faces and mesh.colors is not None


def test_level_set_points_lie_on_a_gaussian_shell_with_outward_normals(sphere_views):
    tv = train_views(sphere_views.subset(range(0, 21, 3)), 32)
    n = 1500
    centres = torch.nn.functional.normalize(torch.randn(n, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    shell = GaussianSet(centres * RADIUS, torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                        torch.full((n, 3), math.log(0.025)), torch.full((n,), 3.0), torch.zeros(n, 1, 3),
                        torch.zeros(n, 0, 3))
    surface = level_set_points(shell, tv, level=0.3, budget=2000)
    r = np.linalg.norm(surface.points, axis=1)
    assert len(r) > 500 and np.all(np.abs(r - RADIUS) < 3 * 0.025)   # within 3 σ of the shell
    cos_out = np.einsum("ij,ij->i", surface.normals, surface.points) / r
    assert np.percentile(cos_out, 5) > 0.9                  # normals point out of the object


def test_poisson_output_is_watertight_on_a_sphere():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(4000, 3))
    normals = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    mesh = poisson_mesh(SurfacePoints(normals * 0.4, normals, np.full((4000, 3), 0.5)), depth=5, target_faces=800)
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces)         # merges coincident vertices: a real watertight check
    assert tm.is_watertight and tm.is_winding_consistent
    assert abs(tm.volume - 4 / 3 * np.pi * 0.4 ** 3) < 0.15 * 4 / 3 * np.pi * 0.4 ** 3


@pytest.fixture(scope="module")
def layer(stages, extracted, cfg):
    tv, _, vanilla, sugar = stages
    mesh, _ = extracted
    return build_layer(mesh, sugar, vanilla, cfg.frosting_gaussians, cfg.frosting_level, tv.extent)


def test_frosting_layer_has_positive_thickness_and_fills_every_cell(layer, cfg):
    assert (layer.inner > 0).all() and (layer.outer > 0).all()
    assert len(layer) >= cfg.frosting_gaussians
    assert set(layer.cells.tolist()) == set(range(len(layer.faces)))   # ceil(N/2F) >= 1 per cell


def test_refinement_lowers_the_loss_of_bound_gaussians(layer, stages, cfg):
    tv = stages[0]
    before = _loss(layer.as_gaussian_set(), tv)
    refined = refine(layer, tv, cfg)
    assert _loss(refined.as_gaussian_set(), tv) < before


def _inside_convex_hull(point: np.ndarray, vertices: np.ndarray, tol: float = 1e-7) -> bool:
    hull = ConvexHull(vertices)
    return bool((hull.equations[:, :3] @ point + hull.equations[:, 3] <= tol * (1 + np.abs(vertices).max())).all())


def test_deformed_gaussian_centres_stay_inside_their_prisms(layer):
    binding = binding_from_layer(layer)
    rng = np.random.default_rng(1)
    v = binding.rest_vertices
    twist = np.radians(40) * (v[:, 2:3] / np.abs(v[:, 2]).max())           # twist about z, grows with height
    posed = np.stack([v[:, 0] * np.cos(twist[:, 0]) - v[:, 1] * np.sin(twist[:, 0]),
                      v[:, 0] * np.sin(twist[:, 0]) + v[:, 1] * np.cos(twist[:, 0]), v[:, 2] * 1.2], 1)
    posed += rng.normal(scale=0.002, size=posed.shape)
    result = deform(binding, posed)
    assert not np.allclose(result.means, layer.centres().detach().numpy())
    for g in rng.choice(len(result.means), size=60, replace=False):
        prism = result.prisms[binding.cells[g]]
        assert _inside_convex_hull(result.means[g], prism), f"Gaussian {g} left its prism"
    assert np.allclose(np.linalg.norm(result.quats, axis=1), 1.0, atol=1e-6)


def test_deform_at_rest_reproduces_the_bound_gaussians(layer):
    binding = binding_from_layer(layer)
    result = deform(binding, binding.rest_vertices)
    np.testing.assert_allclose(result.means, layer.centres().detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(result.scales, np.exp(binding.log_scales), rtol=1e-5)


def test_deform_rejects_vertices_of_another_mesh(layer):
    with pytest.raises(KeyDiffError) as err:
        deform(binding_from_layer(layer), np.zeros((3, 3)))
    assert err.value.code == "invalid_mesh"


def test_gaussians_ply_round_trips_in_the_3dgs_layout(stages, tmp_path):
    _, _, vanilla, _ = stages
    path = save_ply(vanilla, tmp_path / "g.ply")
    header = path.read_bytes()[:2000].split(b"end_header")[0].decode()
    assert "property float f_dc_0" in header and "property float rot_3" in header
    back = load_ply(path)
    for name, value in vanilla.params().items():
        torch.testing.assert_close(getattr(back, name), value.float(), msg=name)


@pytest.mark.slow
def test_run_reconstruct_writes_all_outputs(sphere_views, tmp_path):
    views_dir = sphere_views.subset(range(0, 21, 3)).save(tmp_path / "views")   # 7 views keep it quick
    out = run_reconstruct(views_dir, tmp_path / "out", preset="tiny")
    names = {p.name for p in out.iterdir()}
    assert {"mesh.ply", "mesh.glb", "gaussians.ply", "binding.npz", "frosting.json"} <= names
    binding = load_binding(out / "binding.npz")
    assert len(load_ply(out / "gaussians.ply")) == len(binding.cells)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]   # no temp folder left behind


def test_run_reconstruct_names_a_bad_preset_and_a_missing_folder(tmp_path):
    with pytest.raises(KeyDiffError) as err:
        run_reconstruct(tmp_path, tmp_path / "out", preset="huge")
    assert err.value.code == "invalid_argument" and "huge" in err.value.message
    with pytest.raises(KeyDiffError) as err:
        run_reconstruct(tmp_path / "nowhere", tmp_path / "out")
    assert err.value.code == "unreadable_file"
    assert not (tmp_path / "out").exists()


def test_exported_mesh_keeps_normals_and_colours_and_binding_reloads(layer, extracted, tmp_path):
    mesh, _ = extracted
    save_mesh(mesh, tmp_path)
    save_frosting(layer, tmp_path)
    ply = trimesh.load(tmp_path / "mesh.ply", process=False)
    assert len(ply.faces) == len(mesh.faces) and ply.visual.vertex_colors.shape == (mesh.num_vertices, 4)
    assert b"property float nx" in (tmp_path / "mesh.ply").read_bytes()[:1000]
    glb = trimesh.load(tmp_path / "mesh.glb", force="mesh", process=False)
    assert len(glb.faces) == len(mesh.faces)
    binding = load_binding(tmp_path / "binding.npz")
    np.testing.assert_allclose(deform(binding, binding.rest_vertices).means,
                               load_ply(tmp_path / "gaussians.ply").means.numpy(), atol=1e-5)


def test_reconstruct_on_cuda_without_a_gpu_names_the_device(sphere_views):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from frosting import reconstruct
    with pytest.raises(KeyDiffError) as err:
        reconstruct(sphere_views, get_preset("tiny"), device="cuda")
    assert err.value.code == "invalid_argument" and "cuda" in err.value.message
