"""Dataset adapters for the paper's data: Human3.6M subjects and joints, photo folders split by breed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from backend.errors import KeyDiffError
from training.data import load_views
from training.datasets import (
    H36M_JOINTS_17,
    breed_splits,
    h36m_item_key,
    h36m_joints,
    h36m_split,
    load_h36m_poses,
    pack_items,
)


def test_h36m_items_map_to_subject_action_and_frame():
    assert h36m_item_key("S9__Walking 1.54138969__000123") == ("S9", "Walking 1", 123)
    with pytest.raises(KeyDiffError) as info:
        h36m_item_key("dog__photo")
    assert info.value.code == "invalid_argument"


def test_h36m_protocol_trains_on_s1_s5_s6_s7_s8_and_tests_on_s9_s11():
    assert [h36m_split(s) for s in ("S1", "S5", "S6", "S7", "S8")] == ["train"] * 5
    assert [h36m_split(s) for s in ("S9", "S11")] == ["test", "test"]
    assert h36m_split("S2") is None


def test_h36m_ground_truth_uses_the_17_bkind_joints_of_the_right_frame(tmp_path):
    sequence = np.arange(3 * 32 * 3, dtype=np.float64).reshape(3, 32, 3)
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=np.array({"S9": {"Walking 1": sequence}}, dtype=object))
    poses = load_h36m_poses(tmp_path / "data_3d_h36m.npz")
    joints = h36m_joints(poses, "S9__Walking 1.54138969__000002")
    np.testing.assert_array_equal(joints, sequence[2][list(H36M_JOINTS_17)])
    assert joints.shape == (17, 3)
    with pytest.raises(KeyDiffError):
        h36m_joints(poses, "S9__Walking 1.54138969__000007")


def test_photo_folders_hold_out_whole_breeds():
    names = [f"breed{b}__img{i}" for b in range(10) for i in range(3)]
    splits = breed_splits(names)
    by_breed = {}
    for name, split in splits.items():
        by_breed.setdefault(name.split("__")[0], set()).add(split)
    assert all(len(s) == 1 for s in by_breed.values())  # no breed on both sides
    assert sorted(b for b, s in by_breed.items() if s == {"test"}) == ["breed4", "breed9"]


def test_packed_items_round_trip_through_the_training_layout(tmp_path):
    def item(name):
        return SimpleNamespace(name=name, images=np.full((4, 8, 8, 3), 200, np.uint8), masks=np.ones((4, 8, 8), bool),
                               projections=np.tile(np.eye(3, 4), (4, 1, 1)), frames=[20, 4, 9, 14])
    items = [item("S1__A.1__000000"), item("S9__A.1__000001")]
    split_of = {"S1__A.1__000000": "train", "S9__A.1__000001": "test"}
    joints = {name: np.random.default_rng(0).normal(size=(17, 3)) for name in split_of}
    written = pack_items(items, split_of, tmp_path, "humanoid", joints)
    assert [p.name for p in written] == ["train.npz", "test.npz"]
    test = load_views(tmp_path / "humanoid" / "test.npz")
    assert len(test) == 1 and test.frames.tolist() == [20, 4, 9, 14]
    np.testing.assert_allclose(test.joints[0], joints["S9__A.1__000001"], rtol=1e-6)
