"""The Rig type: bones derived from the joint tree, link bones, and clear errors for malformed skeletons."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import KeyDiffError
from backend.rig import Rig, SkinWeights


def y_shaped_rig() -> Rig:
    # root(0) -> spine(1) -> {left(2), right(3)}
    joints = np.array([[0, 0, 0], [0, 0, 1], [-1, 0, 2], [1, 0, 2]], float)
    return Rig(joints, np.array([-1, 0, 1, 1]), ("root", "spine", "left", "right"))


def test_each_non_root_joint_ends_one_bone_whose_parent_ends_at_its_head() -> None:
    rig = y_shaped_rig()
    assert rig.num_bones == 3
    np.testing.assert_array_equal(rig.bone_tail_joint, [1, 2, 3])
    np.testing.assert_array_equal(rig.bone_head_joint, [0, 1, 1])
    np.testing.assert_array_equal(rig.bone_parents, [-1, 0, 0])
    assert rig.bone_names == ("spine", "left", "right")
    np.testing.assert_allclose(rig.bone_heads[1], rig.bone_tails[0])


def test_posing_a_bone_moves_it_and_all_bones_below_it() -> None:
    rig = y_shaped_rig()
    np.testing.assert_array_equal(rig.bone_descendants(0), [True, True, True])
    np.testing.assert_array_equal(rig.bone_descendants(1), [False, True, False])


def test_bone_order_puts_parents_first_whatever_the_joint_numbering() -> None:
    joints = np.arange(15, dtype=float).reshape(5, 3)
    rig = Rig(joints, np.array([3, 4, 0, -1, 3]), tuple("abcde"))
    seen: set[int] = set()
    for bone in rig.bone_order():
        parent = rig.bone_parents[bone]
        assert parent == -1 or parent in seen
        seen.add(int(bone))
    assert seen == set(range(rig.num_bones))


@pytest.mark.parametrize(
    "joints, parents, problem",
    [
        (np.zeros((1, 3)), [-1], "at least 2 joints"),
        (np.zeros((3, 2)), [-1, 0, 0], "shape (J, 3)"),
        (np.array([[0, 0, 0], [np.nan, 0, 0]]), [-1, 0], "NaN"),
        (np.zeros((3, 3)), [-1, -1, 0], "exactly one root"),
        (np.zeros((3, 3)), [-1, 2, 1], "cycle"),
        (np.zeros((3, 3)), [-1, 0, 7], "parent indices"),
    ],
)
def test_malformed_skeleton_is_rejected_with_a_reason(joints, parents, problem) -> None:
    with pytest.raises(KeyDiffError, match=problem.replace("(", r"\(").replace(")", r"\)")) as info:
        Rig(np.asarray(joints), np.asarray(parents), tuple(f"j{i}" for i in range(len(parents))))
    assert info.value.code == "invalid_rig"


def test_skin_weights_keep_the_k_heaviest_bones_and_sum_to_one() -> None:
    dense = np.array([[0.1, 0.5, 0.2, 0.15, 0.05], [0.0, 0.0, 0.0, 0.0, 3.0]])
    weights = SkinWeights.from_dense(dense, k=3)
    np.testing.assert_array_equal(weights.indices[0], [1, 2, 3])
    np.testing.assert_allclose(weights.weights.sum(axis=1), 1.0, rtol=1e-6)
    assert weights.weights[1, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(weights.to_dense()[0], [0, 0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0], rtol=1e-6)


def test_a_vertex_without_any_weight_is_an_error_not_a_silent_zero_row() -> None:
    with pytest.raises(KeyDiffError, match="no positive weight"):
        SkinWeights.from_dense(np.array([[0.0, 0.0], [1.0, 0.0]]), k=2)
