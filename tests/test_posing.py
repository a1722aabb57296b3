"""Linear blend skinning (backend/posing.py): what posing a bound mesh must do."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backend.posing import bone_transforms, pose_joints, random_rotations, skin_vertices
from backend.rig import Rig, SkinWeights


def branching_rig() -> Rig:
    """root(0) → 1 → 2 (a chain) and root → 3 → 4 (a second branch): bones 0..3 end at joints 1..4."""
    joints = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [0.0, 1.0, 0], [0.0, 2.0, 0]])
    return Rig(joints, np.array([-1, 0, 1, 0, 3]), ("root", "a", "b", "c", "d"))


def random_skin(num_vertices: int, num_bones: int, rng: np.random.Generator, k: int = 2) -> SkinWeights:
    dense = np.zeros((num_vertices, num_bones))
    for slot in range(k):
        dense[np.arange(num_vertices), rng.integers(0, num_bones, num_vertices)] += rng.uniform(0.1, 1.0, num_vertices)
    return SkinWeights.from_dense(dense, k=k)


def rotation_z(degrees: float) -> np.ndarray:
    return Rotation.from_euler("z", degrees, degrees=True).as_matrix()


def test_the_rest_pose_leaves_every_vertex_where_it_is():
    rng = np.random.default_rng(0)
    rig = branching_rig()
    vertices = rng.normal(size=(400, 3))
    skin = random_skin(400, rig.num_bones, rng, k=3)
    transforms = bone_transforms(rig, np.tile(np.eye(3), (rig.num_bones, 1, 1)))
    np.testing.assert_allclose(skin_vertices(vertices, skin, transforms), vertices, atol=1e-12)
    np.testing.assert_allclose(pose_joints(rig, transforms), rig.joints, atol=1e-12)


def test_rotating_one_bone_moves_exactly_the_vertices_weighted_to_it_or_its_descendants():
    rng = np.random.default_rng(1)
    rig = branching_rig()
    vertices = rng.normal(size=(600, 3)) + [0.5, 0.5, 0.3]
    skin = random_skin(600, rig.num_bones, rng, k=2)
    dense = skin.to_dense()
    for bone in range(rig.num_bones):
        rotations = np.tile(np.eye(3), (rig.num_bones, 1, 1))
        rotations[bone] = Rotation.from_rotvec([0.3, -0.5, 0.8]).as_matrix()
        posed = skin_vertices(vertices, skin, bone_transforms(rig, rotations))
        moved = np.linalg.norm(posed - vertices, axis=1) > 1e-6         # float32 weights sum to 1 ± 1e-7
        affected = dense[:, rig.bone_descendants(bone)].sum(axis=1) > 0
        np.testing.assert_array_equal(moved, affected, err_msg=f"posing bone {rig.bone_names[bone]}")


def test_a_rigidly_bound_chain_rotates_like_the_closed_form():
    rig = branching_rig()
    # one vertex rigidly on each bone of the chain root → a → b, off the bone axis
    vertices = np.array([[0.5, 0.2, 0.1], [1.5, -0.1, 0.3]])
    skin = SkinWeights(np.array([[0], [1]], np.int32), np.ones((2, 1), np.float32), rig.num_bones)
    rotations = np.tile(np.eye(3), (rig.num_bones, 1, 1))
    rotations[0], rotations[1] = rotation_z(90), rotation_z(-30)
    posed = skin_vertices(vertices, skin, bone_transforms(rig, rotations))
    elbow = rig.joints[1]
    expected_0 = rotation_z(90) @ vertices[0]                                     # about the root at the origin
    expected_1 = rotation_z(90) @ (elbow + rotation_z(-30) @ (vertices[1] - elbow))
    np.testing.assert_allclose(posed, [expected_0, expected_1], atol=1e-12)
    # the net effect on the second bone is a 60° turn: distances to the posed elbow are preserved
    posed_elbow = pose_joints(rig, bone_transforms(rig, rotations))[1]
    np.testing.assert_allclose(posed_elbow, [0.0, 1.0, 0.0], atol=1e-12)
    assert np.linalg.norm(posed[1] - posed_elbow) == pytest.approx(np.linalg.norm(vertices[1] - elbow), abs=1e-12)


def test_posed_joints_agree_with_skinning_a_vertex_placed_on_each_joint():
    rng = np.random.default_rng(2)
    rig = branching_rig()
    rotations = random_rotations(rig.num_bones, 45.0, rng)
    transforms = bone_transforms(rig, rotations)
    tails = rig.bone_tail_joint
    skin = SkinWeights(np.arange(rig.num_bones, dtype=np.int32)[:, None], np.ones((rig.num_bones, 1), np.float32),
                       rig.num_bones)
    skinned_tails = skin_vertices(rig.joints[tails], skin, transforms)
    np.testing.assert_allclose(pose_joints(rig, transforms)[tails], skinned_tails, atol=1e-12)


def test_bones_keep_their_length_under_any_pose():
    rng = np.random.default_rng(3)
    rig = branching_rig()
    posed = pose_joints(rig, bone_transforms(rig, random_rotations(rig.num_bones, 90.0, rng)))
    rest_lengths = np.linalg.norm(rig.bone_tails - rig.bone_heads, axis=1)
    posed_lengths = np.linalg.norm(posed[rig.bone_tail_joint] - posed[rig.bone_head_joint], axis=1)
    np.testing.assert_allclose(posed_lengths, rest_lengths, atol=1e-12)


def test_a_link_bone_carries_its_parents_motion_to_the_child_bone():
    # artist rig: the child bone starts at (2, 0, 0), not at its parent's tail (1, 0, 0); a link bone bridges
    joints = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    rig = Rig(joints, np.array([-1, 0, 1, 2]), ("root", "upper_end", "lower_start", "lower_end"),
              bone_deforms=np.array([True, False, True]))
    vertex = np.array([[2.5, 0.1, 0.0]])
    skin = SkinWeights(np.array([[2]], np.int32), np.ones((1, 1), np.float32), rig.num_bones)
    rotations = np.tile(np.eye(3), (3, 1, 1))
    rotations[0] = rotation_z(90)
    posed = skin_vertices(vertex, skin, bone_transforms(rig, rotations))
    np.testing.assert_allclose(posed[0], rotation_z(90) @ vertex[0], atol=1e-12)


def test_random_rotations_stay_within_the_requested_angle():
    rotations = random_rotations(500, 45.0, np.random.default_rng(4))
    angles = np.degrees(np.linalg.norm(Rotation.from_matrix(rotations).as_rotvec(), axis=1))
    assert rotations.shape == (500, 3, 3)
    assert angles.max() <= 45.0 + 1e-9 and angles.max() > 40.0
    np.testing.assert_allclose(np.einsum("bij,bkj->bik", rotations, rotations), np.tile(np.eye(3), (500, 1, 1)),
                               atol=1e-12)
