"""MST skeleton from keypoints and predicted edge weights: the trees an artist gets from hand-made cases."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform

from backend.errors import KeyDiffError
from backend.skeleton import build_skeleton


def tree_edges(result) -> set[frozenset[int]]:
    """Undirected bones as pairs of joint indices."""
    rig = result.rig
    return {frozenset((int(h), int(t))) for h, t in zip(rig.bone_head_joint, rig.bone_tail_joint)}


def distance_mst_edges(points: np.ndarray) -> set[frozenset[int]]:
    """The pure-distance MST computed independently (scipy), as the reference for uninformative weights."""
    tree = minimum_spanning_tree(squareform(pdist(points))).tocoo()
    return {frozenset((int(i), int(j))) for i, j in zip(tree.row, tree.col)}


def test_collinear_keypoints_with_strong_consecutive_weights_form_a_chain_rooted_in_the_middle():
    order = np.array([3, 0, 4, 1, 2])                                  # shuffled, as a network would emit them
    positions = np.array([[x, 0.0, 0.0] for x in range(5)])[order]
    weights = np.full((5, 5), 0.05)
    for a in range(4):                                                 # strong weight between x and x + 1
        i, j = np.flatnonzero(order == a)[0], np.flatnonzero(order == a + 1)[0]
        weights[i, j] = weights[j, i] = 3.0
    result = build_skeleton(positions, weights)
    rig = result.rig
    assert rig.num_bones == 4
    assert tree_edges(result) == {frozenset((int(np.flatnonzero(order == a)[0]), int(np.flatnonzero(order == a + 1)[0])))
                                  for a in range(4)}
    assert rig.joints[rig.root].tolist() == [2.0, 0.0, 0.0]            # the middle of the chain
    assert rig.names[rig.root] == "root"
    np.testing.assert_allclose(result.bone_confidence, 1.0)


def test_a_star_of_tips_around_a_centre_hangs_every_tip_from_the_centre():
    angles = np.linspace(0, 2 * np.pi, 5, endpoint=False)           # tips 1.18 apart, 1.0 from the centre
    tips = np.stack([np.cos(angles), np.sin(angles), 0.2 * angles], axis=1)
    positions = np.vstack([tips[:3], [[0.0, 0.0, 0.4]], tips[3:]])    # centre is keypoint 3
    result = build_skeleton(positions, np.ones((6, 6)))
    assert result.rig.root == 3
    assert np.all(np.delete(result.rig.parents, 3) == 3)


def test_duplicated_keypoints_merge_into_one_joint_at_their_mean_with_the_max_weight():
    positions = np.array([[0.0, 0, 0], [1.0, 0, 0], [1.004, 0.002, 0], [2.0, 0, 0], [0.0, 0, 1.0]])
    weights = np.full((5, 5), 0.1)
    weights[0, 1] = weights[1, 0] = 0.5
    weights[0, 2] = weights[2, 0] = 2.0                                # the duplicate carries the strong weight
    result = build_skeleton(positions, weights, merge_fraction=0.02)
    np.testing.assert_array_equal(result.keypoint_to_joint, [0, 1, 1, 2, 3])
    assert result.rig.num_joints == 4
    np.testing.assert_allclose(result.rig.joints[1], [1.002, 0.001, 0.0])
    assert result.joint_edge_weights[0, 1] == pytest.approx(2.0)
    assert result.joint_edge_weights[1, 1] == 0.0


def test_merging_is_transitive_and_only_within_the_threshold():
    # a run of points 0.01 apart (diagonal ~2.3, threshold 0.023) collapses to one joint; points 0.5 apart stay
    run = np.array([[0.0, 0.0, 0.0], [0.01, 0, 0], [0.02, 0, 0], [0.03, 0, 0]])
    others = np.array([[0.5, 0, 0], [1.0, 0, 0], [2.0, 1.0, 0.0]])
    result = build_skeleton(np.vstack([run, others]), np.ones((7, 7)))
    np.testing.assert_array_equal(result.keypoint_to_joint, [0, 0, 0, 0, 1, 2, 3])
    np.testing.assert_allclose(result.rig.joints[0], [0.015, 0, 0])


def test_exact_duplicates_merge_even_with_merging_disabled():
    positions = np.array([[0.0, 0, 0], [0.0, 0, 0], [1.0, 0, 0]])
    result = build_skeleton(positions, np.ones((3, 3)), merge_fraction=0.0)
    assert result.rig.num_joints == 2
    assert np.linalg.norm(result.rig.bone_tails - result.rig.bone_heads, axis=1).min() > 0


@pytest.mark.parametrize("weights_kind", ["uniform", "zero", "noisy"])
def test_uninformative_weights_give_the_distance_mst(weights_kind):
    rng = np.random.default_rng(11)
    positions = rng.normal(size=(18, 3))
    weights = {
        "uniform": np.full((18, 18), 0.69),
        "zero": np.zeros((18, 18)),
        # an untrained network: softplus of small random logits, within ±3 % of each other
        "noisy": 0.69 + 0.02 * rng.uniform(-1, 1, size=(18, 18)),
    }[weights_kind]
    result = build_skeleton(positions, weights, merge_fraction=0.0)
    assert tree_edges(result) == distance_mst_edges(positions)


def test_confident_weights_override_distance_where_they_disagree():
    # a palm and two finger tips: the tips are each other's nearest neighbours (distance MST links tip-tip),
    # but the network is sure both fingers attach to the palm.
    palm, tip_a, tip_b = [0.0, 0, 0], [1.0, 0.1, 0], [1.0, -0.1, 0]
    positions = np.array([palm, tip_a, tip_b])
    assert frozenset((1, 2)) in distance_mst_edges(positions)
    weights = np.array([[0.0, 4.0, 4.0], [4.0, 0.0, 0.01], [4.0, 0.01, 0.0]])
    result = build_skeleton(positions, weights)
    assert tree_edges(result) == {frozenset((0, 1)), frozenset((0, 2))}
    # with the distance term weighted heavily, distance wins again
    assert frozenset((1, 2)) in tree_edges(build_skeleton(positions, weights, distance_weight=100.0))


def test_weights_between_separate_parts_missing_falls_back_to_the_shortest_link():
    # two confident chains with no predicted edge between them: they must still form one tree
    left = np.array([[0.0, 0, 0], [0.0, 1, 0], [0.0, 2, 0]])
    right = np.array([[3.0, 0, 0], [3.0, 1, 0], [3.0, 2, 0]])
    positions = np.vstack([left, right])
    weights = np.zeros((6, 6))
    for i, j in [(0, 1), (1, 2), (3, 4), (4, 5)]:
        weights[i, j] = weights[j, i] = 1.0
    edges = tree_edges(build_skeleton(positions, weights))
    assert {frozenset((0, 1)), frozenset((1, 2)), frozenset((3, 4)), frozenset((4, 5))} <= edges
    assert len(edges) == 5 and any(len(e & {0, 1, 2}) == 1 for e in edges)   # exactly one bridge


def test_centre_ties_go_to_the_joint_nearest_the_centroid():
    # chain 0-1-2-3 with an uneven last bone: joints 1 and 2 are both hop centres; the centroid x = 3.25
    positions = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [10.0, 0, 0]])
    result = build_skeleton(positions, np.ones((4, 4)))
    assert result.rig.root == 2
    np.testing.assert_array_equal(result.rig.parents, [1, 2, -1, 2])


def test_root_can_be_chosen_by_keypoint_index_and_bones_point_away_from_it():
    positions = np.array([[x, 0.0, 0.0] for x in range(5)])
    result = build_skeleton(positions, np.ones((5, 5)), root=0)
    np.testing.assert_array_equal(result.rig.parents, [-1, 0, 1, 2, 3])
    assert result.rig.names[0] == "root"


def test_joint_and_bone_names_are_unique_stable_blender_names():
    rng = np.random.default_rng(2)
    positions = rng.normal(size=(120, 3))
    first = build_skeleton(positions, np.ones((120, 120)), merge_fraction=0.0)
    second = build_skeleton(positions, np.ones((120, 120)), merge_fraction=0.0)
    rig = first.rig
    assert rig.names == second.rig.names and rig.bone_names == second.rig.bone_names
    assert len(set(rig.names)) == 120 and len(set(rig.bone_names)) == 119
    assert all(re.fullmatch(r"root|joint_\d{3}", n) for n in rig.names)
    assert all(re.fullmatch(r"bone_\d{3}", n) and len(n) <= 63 for n in rig.bone_names)
    tails = rig.bone_tail_joint
    assert [rig.bone_names[b] for b in range(rig.num_bones)] == [f"bone_{j:03d}" for j in tails]


@pytest.mark.parametrize(
    "keypoints, weights, expected",
    [
        (np.array([[0.0, np.nan, 0], [1.0, 0, 0]]), np.ones((2, 2)), "NaN"),
        (np.array([[0.0, 0, 0]]), np.ones((1, 1)), "at least 2 keypoints"),
        (np.zeros((3, 2)), np.ones((3, 3)), "(3, 2)"),
        (np.eye(3), np.ones((3, 4)), "(3, 4)"),
        (np.eye(3), np.ones((2, 2)), "(3, 3)"),
        (np.eye(3), -np.ones((3, 3)), ">= 0"),
        (np.eye(3), np.full((3, 3), np.nan), "NaN"),
        (np.zeros((4, 3)), np.ones((4, 4)), "coincide"),
    ],
)
def test_malformed_keypoints_or_weights_raise_invalid_keypoints_naming_the_problem(keypoints, weights, expected):
    with pytest.raises(KeyDiffError) as err:
        build_skeleton(keypoints, weights)
    assert err.value.code == "invalid_keypoints"
    assert expected in err.value.message


def test_keypoints_that_all_collapse_into_one_joint_raise():
    keypoints = np.array([[0.0, 0, 0], [0.001, 0, 0], [0.0, 0.001, 0]])   # within 0.02 of a unit-size object
    with pytest.raises(KeyDiffError) as err:
        build_skeleton(keypoints, np.ones((3, 3)), object_size=1.0)
    assert err.value.code == "invalid_keypoints" and "2 distinct joints" in err.value.message


@pytest.mark.parametrize("settings", [{"root": 7}, {"merge_fraction": -0.1}, {"distance_weight": float("inf")}])
def test_unusable_settings_raise_invalid_argument(settings):
    with pytest.raises(KeyDiffError) as err:
        build_skeleton(np.eye(3), np.ones((3, 3)), **settings)
    assert err.value.code == "invalid_argument"
