"""Rigging metrics: the numbers the rigging benchmark reports must mean what reference/rigging.md says."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import KeyDiffError
from backend.metrics.skeleton import (
    apply_transform, merge_duplicate_joints, sample_bones, skeleton_metrics, unit_cube_transform,
)
from backend.metrics.skinning import benchmark_poses, deform, influence_scores, skinning_metrics
from backend.rig import Rig, SkinWeights
from tests.conftest import shared_rig_files

# A "Y": root at 0, a spine up, two arms from the top of the spine.
Y_JOINTS = np.array([[0.0, 0, 0], [0, 0, 0.6], [-0.4, 0, 0.9], [0.4, 0, 0.9]])
Y_PARENTS = np.array([-1, 0, 1, 1])


def test_unit_cube_transform_centres_the_box_and_spans_minus_one_to_one_on_the_longest_side():
    vertices = np.array([[1.0, 2.0, 3.0], [5.0, 3.0, 4.0], [3.0, 2.5, 3.2]])
    mapped = apply_transform(unit_cube_transform(vertices), vertices)
    np.testing.assert_allclose(mapped.min(axis=0)[0], -1.0)
    np.testing.assert_allclose(mapped.max(axis=0)[0], 1.0)
    np.testing.assert_allclose((mapped.min(axis=0) + mapped.max(axis=0)) / 2, 0.0, atol=1e-12)
    with pytest.raises(KeyDiffError, match="no extent"):
        unit_cube_transform(np.ones((4, 3)))


def test_identical_skeletons_score_zero_distance_and_full_precision_recall():
    scores = skeleton_metrics(Y_JOINTS, Y_PARENTS, Y_JOINTS, Y_PARENTS)
    assert scores.cd_j2j == scores.cd_j2b == scores.cd_b2b == 0.0
    assert scores.precision == scores.recall == 1.0
    assert (scores.num_joints, scores.num_bones, scores.num_true_joints, scores.num_true_bones) == (4, 3, 4, 3)


def test_a_shifted_skeleton_scores_its_shift_and_matches_only_within_the_tolerance():
    shift = np.array([0.0, 0.03, 0.0])                           # off the plane of the Y: every distance is 0.03
    scores = skeleton_metrics(Y_JOINTS + shift, Y_PARENTS, Y_JOINTS, Y_PARENTS, tolerance=0.05)
    assert scores.cd_j2j == pytest.approx(0.03)
    assert scores.cd_b2b == pytest.approx(0.03, abs=1e-9)
    assert scores.precision == scores.recall == 1.0
    far = skeleton_metrics(Y_JOINTS + 4 * shift, Y_PARENTS, Y_JOINTS, Y_PARENTS, tolerance=0.05)
    assert far.precision == far.recall == 0.0


def test_joints_placed_on_the_true_bones_score_zero_joint_to_bone_on_their_side():
    """J2B forgives joints that sit on a bone but not at a joint; J2J does not."""
    mid = (Y_JOINTS[Y_PARENTS[1:]] + Y_JOINTS[1:]) / 2                      # bone midpoints
    joints = np.vstack([Y_JOINTS, mid])
    parents = np.array([-1, 0, 1, 1, 0, 1, 1])
    scores = skeleton_metrics(joints, parents, Y_JOINTS, Y_PARENTS)
    assert scores.cd_j2j > 0.05
    assert scores.cd_j2b < scores.cd_j2j / 3


def test_bone_samples_are_never_farther_apart_than_the_spacing():
    samples = sample_bones(Y_JOINTS, Y_PARENTS, spacing=0.01)
    spine = samples[(np.abs(samples[:, 0]) < 1e-12) & (samples[:, 2] <= 0.6)]
    gaps = np.diff(np.sort(spine[:, 2]))
    assert gaps.max() <= 0.01 + 1e-12 and len(spine) >= 61


def test_stacked_duplicate_joints_do_not_change_the_scores():
    joints = np.vstack([Y_JOINTS, Y_JOINTS[1:2] + 1e-6])
    parents = np.append(Y_PARENTS, 1)
    merged, merged_parents = merge_duplicate_joints(joints, parents)
    assert len(merged) == 4 and (merged_parents >= 0).sum() == 3
    assert skeleton_metrics(joints, parents, Y_JOINTS, Y_PARENTS).cd_j2j == pytest.approx(0.0, abs=1e-6)


def test_bad_skeletons_are_rejected_with_a_clear_error():
    with pytest.raises(KeyDiffError, match="parents must have shape"):
        skeleton_metrics(Y_JOINTS, Y_PARENTS[:3], Y_JOINTS, Y_PARENTS)
    with pytest.raises(KeyDiffError, match="NaN"):
        skeleton_metrics(Y_JOINTS * np.nan, Y_PARENTS, Y_JOINTS, Y_PARENTS)
    with pytest.raises(KeyDiffError, match="tolerance"):
        skeleton_metrics(Y_JOINTS, Y_PARENTS, Y_JOINTS, Y_PARENTS, tolerance=0)


# --- skinning ---------------------------------------------------------------------------------------------
def chain() -> tuple[Rig, np.ndarray]:
    rig = Rig(np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]]), np.array([-1, 0, 1]), ("a", "b", "c"))
    vertices = np.stack([np.linspace(0.05, 1.95, 20), np.full(20, 0.1), np.zeros(20)], axis=1)
    return rig, vertices


def test_the_true_weights_score_zero_error_and_perfect_influences():
    rig, vertices = chain()
    true = np.zeros((20, 2))
    true[:10, 0] = 1.0
    true[10:, 1] = 1.0
    scores = skinning_metrics(vertices, rig, true, true)
    assert scores.deformation_error_mean == 0.0 and scores.deformation_error_max == 0.0
    assert (scores.precision, scores.recall, scores.l1, scores.unweighted_vertices) == (1.0, 1.0, 0.0, 0)


def test_weights_on_the_wrong_bone_move_vertices_away_and_cost_precision_recall_and_l1():
    rig, vertices = chain()
    true = np.zeros((20, 2))
    true[:10, 0] = 1.0
    true[10:, 1] = 1.0
    wrong = true.copy()
    wrong[15:] = [1.0, 0.0]                                              # the tip follows the first bone only
    scores = skinning_metrics(vertices, rig, wrong, true)
    assert scores.deformation_error_mean > 0.01
    assert scores.deformation_error_max > scores.deformation_error_mean
    assert scores.precision == pytest.approx(15 / 20) and scores.recall == pytest.approx(15 / 20)
    assert scores.l1 == pytest.approx(5 * 2 / 20)


def test_influence_scores_ignore_predicted_weights_below_one_thousandth():
    true = np.array([[1.0, 0.0]])
    precision, recall, l1 = influence_scores(np.array([[0.9995, 0.0005]]), true)
    assert (precision, recall) == (1.0, 1.0) and l1 == pytest.approx(0.0)


def test_an_unweighted_vertex_stays_at_rest_as_in_blender():
    rig, vertices = chain()
    poses = benchmark_poses(rig, num_poses=1)
    weights = np.zeros((20, 2))
    weights[:, 1] = 1.0
    weights[3] = 0.0
    posed = deform(vertices, weights, poses[0])
    np.testing.assert_allclose(posed[3], vertices[3])
    assert skinning_metrics(vertices, rig, weights, weights, poses=poses).unweighted_vertices == 1


def test_benchmark_poses_repeat_with_the_seed_and_never_pose_link_bones():
    joints = np.array([[0.0, 0, 0], [1.0, 0, 0], [1.0, 1.0, 0], [1.0, 2.0, 0]])
    rig = Rig(joints, np.array([-1, 0, 1, 2]), ("a", "b", "c", "d"), bone_deforms=np.array([True, False, True]))
    first, again = benchmark_poses(rig, 3, seed=5), benchmark_poses(rig, 3, seed=5)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, benchmark_poses(rig, 3, seed=6))
    np.testing.assert_allclose(first[:, 1], first[:, 0])                # the link bone only carries its parent
    with pytest.raises(KeyDiffError, match="num_poses"):
        benchmark_poses(rig, 0)


def test_weights_of_the_wrong_shape_are_rejected():
    rig, vertices = chain()
    with pytest.raises(KeyDiffError, match="weights must have shape"):
        skinning_metrics(vertices, rig, np.ones((20, 3)), np.ones((20, 2)))


@pytest.mark.parametrize("path", shared_rig_files()[:1] or [None])
def test_an_artist_rig_scored_against_itself_is_perfect_and_rigid_weights_are_not(path):
    if path is None:
        pytest.skip("../shared/data/rigs is not beside this checkout")
    from backend.export.gltf_reader import load_skinned_gltf

    asset = load_skinned_gltf(path)
    to_unit = unit_cube_transform(asset.mesh.vertices)
    vertices, rig = apply_transform(to_unit, asset.mesh.vertices), asset.rig.transformed(to_unit)
    true = asset.weights.to_dense().astype(np.float64)
    poses = benchmark_poses(rig, num_poses=4)
    assert skinning_metrics(vertices, rig, true, true, poses=poses).deformation_error_max < 1e-9
    rigid = SkinWeights.from_dense(true, k=1).to_dense().astype(np.float64)
    assert skinning_metrics(vertices, rig, rigid, true, poses=poses).deformation_error_mean > 1e-4
