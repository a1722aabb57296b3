"""Gaussian-distance skinning: what a user binding a mesh to a rig relies on."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import KeyDiffError
from backend.rig import Rig
from backend.skinning import gaussian_distance_weights, point_segment_distances


def two_bone_chain() -> Rig:
    """Joints at x = 0, 1, 2: bone 0 spans [0, 1], bone 1 spans [1, 2] along +x."""
    joints = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    return Rig(joints, np.array([-1, 0, 1]), ("root", "mid", "tip"))


def brute_force_distances(points: np.ndarray, heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """The textbook per-pair projection, written independently of the fast expansion."""
    out = np.empty((len(points), len(heads)))
    for b, (head, tail) in enumerate(zip(heads, tails)):
        axis = tail - head
        length2 = axis @ axis
        for i, point in enumerate(points):
            t = 0.0 if length2 == 0 else min(max((point - head) @ axis / length2, 0.0), 1.0)
            out[i, b] = np.linalg.norm(point - (head + t * axis))
    return out


def test_vertices_near_a_bone_bind_to_it_and_the_shared_joint_splits_evenly():
    rig = two_bone_chain()
    vertices = np.array([[0.3, 0.05, 0], [1.7, -0.05, 0], [1.0, 0.0, 0.0], [1.0, 0.1, 0.1], [2.0, 0.0, 0.0]])
    dense = gaussian_distance_weights(vertices, rig, sigma_scale=0.02).to_dense()
    assert dense[0, 0] == pytest.approx(1.0, abs=1e-4)
    assert dense[1, 1] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(dense[2], [0.5, 0.5], atol=1e-5)     # on the joint: equidistant
    np.testing.assert_allclose(dense[3], [0.5, 0.5], atol=1e-5)
    assert dense[4, 1] == pytest.approx(1.0, abs=1e-4)               # tip belongs to the last bone


def test_weights_blend_smoothly_across_the_shared_joint_with_a_wider_sigma():
    rig = two_bone_chain()
    vertices = np.array([[0.95, 0.2, 0.0], [1.05, 0.2, 0.0]])
    dense = gaussian_distance_weights(vertices, rig, sigma_scale=0.2).to_dense()
    assert 0.5 < dense[0, 0] < 1.0 and 0.5 < dense[1, 1] < 1.0      # each side leans to its own bone
    np.testing.assert_allclose(dense[0], dense[1][::-1], atol=1e-5)   # mirror-symmetric about the joint


def test_a_vertex_far_from_every_bone_still_binds_fully_to_the_nearest_one():
    rig = two_bone_chain()
    vertices = np.array([[1e4, 0.0, 0.0], [-5e3, 3e3, 0.0], [0.5, 0, 0]])  # a raw Gaussian underflows here
    skin = gaussian_distance_weights(vertices, rig, sigma_scale=0.001)
    dense = skin.to_dense()
    np.testing.assert_allclose(dense[0], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(dense[1], [1.0, 0.0], atol=1e-6)
    assert np.isfinite(skin.weights).all()


def test_rows_sum_to_one_and_at_most_k_bones_influence_each_vertex():
    rng = np.random.default_rng(3)
    joints = rng.normal(size=(12, 3))
    parents = np.array([-1] + [int(rng.integers(0, j)) for j in range(1, 12)])
    rig = Rig(joints, parents, tuple(f"j{j}" for j in range(12)))
    vertices = rng.normal(size=(500, 3))
    for top_k in (1, 2, 4, 6):
        skin = gaussian_distance_weights(vertices, rig, sigma_scale=0.5, top_k=top_k)
        assert skin.weights.shape == (500, top_k) and skin.indices.dtype == np.int32
        np.testing.assert_allclose(skin.weights.sum(axis=1), 1.0, atol=1e-6)
        assert ((skin.to_dense() > 0).sum(axis=1) <= top_k).all()
        assert (np.diff(skin.weights, axis=1) <= 1e-7).all()          # heaviest first, as glTF tools expect


def test_the_k_bones_kept_are_the_nearest_segments():
    rng = np.random.default_rng(4)
    joints = rng.normal(size=(9, 3))
    rig = Rig(joints, np.array([-1, 0, 1, 2, 0, 4, 0, 6, 7]), tuple(f"j{j}" for j in range(9)))
    vertices = rng.normal(size=(200, 3))
    skin = gaussian_distance_weights(vertices, rig, sigma_scale=1.0, top_k=3)
    distances = brute_force_distances(vertices, rig.bone_heads, rig.bone_tails)
    kept = np.take_along_axis(distances, skin.indices, axis=1)        # bones sharing a joint may tie exactly
    np.testing.assert_allclose(kept, np.sort(distances, axis=1)[:, :3], atol=1e-5)


def test_non_deforming_link_bones_never_receive_weight():
    joints = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    rig = Rig(joints, np.array([-1, 0, 1, 2]), ("a", "b", "c", "d"), bone_deforms=np.array([True, False, True]))
    vertices = np.array([[1.5, 0.01, 0.0], [1.2, 0.0, 0.3], [0.5, 0.1, 0.0], [2.5, 0.1, 0.0]])
    dense = gaussian_distance_weights(vertices, rig, sigma_scale=0.05).to_dense()
    assert (dense[:, 1] == 0).all()
    np.testing.assert_allclose(dense.sum(axis=1), 1.0, atol=1e-6)
    assert dense[2, 0] == pytest.approx(1.0, abs=1e-4) and dense[3, 2] == pytest.approx(1.0, abs=1e-4)


def test_fewer_deforming_bones_than_k_pads_with_zero_weight_slots():
    joints = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    rig = Rig(joints, np.array([-1, 0, 1]), ("a", "b", "c"), bone_deforms=np.array([False, True]))
    skin = gaussian_distance_weights(np.array([[0.2, 0.0, 0.0]]), rig, top_k=4)
    assert skin.weights.shape == (1, 2)
    np.testing.assert_allclose(skin.weights[0], [1.0, 0.0])
    assert skin.indices[0, 0] == 1


def test_higher_sharpness_makes_binding_more_rigid():
    rig = two_bone_chain()
    vertex = np.array([[0.8, 0.3, 0.0]])                              # nearer bone 0 than bone 1
    soft = gaussian_distance_weights(vertex, rig, sigma_scale=0.2, sharpness=1.0).to_dense()[0, 0]
    gauss = gaussian_distance_weights(vertex, rig, sigma_scale=0.2, sharpness=2.0).to_dense()[0, 0]
    sharp = gaussian_distance_weights(vertex, rig, sigma_scale=0.2, sharpness=8.0).to_dense()[0, 0]
    assert 0.5 < soft < gauss < sharp


def test_gaussian_weights_match_the_documented_formula():
    rig = two_bone_chain()
    vertices = np.array([[0.8, 0.3, 0.0], [1.4, -0.2, 0.1]])
    sigma = 0.1 * 2.5
    distances = brute_force_distances(vertices, rig.bone_heads, rig.bone_tails)
    raw = np.exp(-0.5 * (distances / sigma) ** 2)
    expected = raw / raw.sum(axis=1, keepdims=True)
    dense = gaussian_distance_weights(vertices, rig, sigma_scale=0.1, object_size=2.5).to_dense()
    np.testing.assert_allclose(dense, expected, atol=1e-5)


def test_sigma_defaults_to_a_fraction_of_the_mesh_diagonal():
    rig = two_bone_chain()
    rng = np.random.default_rng(6)
    vertices = rng.uniform([-0.5, -1, -1], [2.5, 1, 1], size=(300, 3))   # encloses the skeleton
    diagonal = np.linalg.norm(vertices.max(0) - vertices.min(0))
    default = gaussian_distance_weights(vertices, rig, sigma_scale=0.05)
    explicit = gaussian_distance_weights(vertices, rig, sigma_scale=0.05, object_size=diagonal)
    np.testing.assert_allclose(default.weights, explicit.weights, atol=1e-6)


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(5)
    joints = rng.normal(size=(7, 3))
    rig = Rig(joints, np.array([-1, 0, 1, 2, 0, 4, 5]), tuple(f"j{j}" for j in range(7)))
    vertices = rng.normal(size=(1001, 3))
    whole = gaussian_distance_weights(vertices, rig, chunk_size=5000)
    pieces = gaussian_distance_weights(vertices, rig, chunk_size=64)
    np.testing.assert_array_equal(whole.indices, pieces.indices)
    np.testing.assert_array_equal(whole.weights, pieces.weights)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-6), (np.float32, 2e-3)])
def test_point_segment_distances_equal_a_brute_force_reference(dtype, tolerance):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 3)) + 5.0                          # off-centre, to stress cancellation
    heads = rng.normal(size=(17, 3)) + 5.0
    tails = heads + rng.normal(size=(17, 3))
    tails[4] = heads[4]                                                # a zero-length segment is a point
    points[:5] = heads[:5] + 0.3 * (tails[:5] - heads[:5])             # points lying on segments
    fast = point_segment_distances(points, heads, tails, dtype=dtype, chunk_size=50)
    assert fast.shape == (300, 17) and fast.dtype == dtype
    np.testing.assert_allclose(fast, brute_force_distances(points, heads, tails), atol=tolerance)


def test_a_mesh_without_vertices_is_rejected():
    with pytest.raises(KeyDiffError) as err:
        gaussian_distance_weights(np.zeros((0, 3)), two_bone_chain())
    assert err.value.code == "invalid_mesh" and "(0, 3)" in err.value.message


def test_nan_vertices_are_rejected_with_a_count():
    vertices = np.array([[0.0, 0, 0], [np.nan, 0, 0], [1.0, np.inf, 0]])
    with pytest.raises(KeyDiffError) as err:
        gaussian_distance_weights(vertices, two_bone_chain())
    assert err.value.code == "invalid_mesh" and "2 of 3" in err.value.message


@pytest.mark.parametrize(
    "settings, named",
    [({"sigma_scale": 0.0}, "sigma_scale"), ({"sharpness": -1.0}, "sharpness"), ({"top_k": 0}, "top_k"),
     ({"object_size": float("nan")}, "object_size"), ({"chunk_size": 0}, "chunk_size")],
)
def test_unusable_settings_are_rejected_naming_the_setting(settings, named):
    with pytest.raises(KeyDiffError) as err:
        gaussian_distance_weights(np.array([[0.0, 0, 0], [1.0, 1, 1]]), two_bone_chain(), **settings)
    assert err.value.code == "invalid_argument" and named in err.value.message


def test_a_rig_without_deforming_bones_is_rejected():
    rig = Rig(np.array([[0.0, 0, 0], [1.0, 0, 0]]), np.array([-1, 0]), ("a", "b"), bone_deforms=np.array([False]))
    with pytest.raises(KeyDiffError) as err:
        gaussian_distance_weights(np.array([[0.0, 0, 0], [1.0, 1, 1]]), rig)
    assert err.value.code == "invalid_rig"
