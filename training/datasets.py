"""Adapters for the paper's real data, so users who hold it can reproduce the evaluation protocol.

Both work on the items that `training/prepare.py` builds from photos (SV3D-p views + features, one item per
photo, named by the photo's relative path with '/' -> '__'), and pack them into the training layout
(`training/data.py`) with a train/test split:

- Human3.6M: photos laid out as `<root>/S<n>/<Action>.<camera>/<frame>.jpg`; ground truth from the
  VideoPose3D file `data_3d_h36m.npz` (`positions_3d[subject][action]` = [F, 32, 3] metres, world frame).
  Train subjects S1, S5, S6, S7, S8; test S9, S11; the 17 joints of BKinD-3D's index list.
- single photos, Stanford-Dogs style: `<root>/<breed>/<photo>.jpg`; whole breeds are held out (every 5th
  breed in sorted order is a test breed), there is no 3D ground truth, so these items train only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from backend.errors import KeyDiffError
from training.data import ViewsSplit, save_views

H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
# BKinD-3D evaluation/get_gt_kpts.py: 17 of the 32 H36M joints, in this order.
H36M_JOINTS_17 = (3, 2, 1, 6, 7, 8, 0, 12, 13, 15, 27, 26, 25, 17, 18, 19, 14)
H36M_NAMES_17 = ("right_foot", "right_knee", "right_hip", "left_hip", "left_knee", "left_foot", "pelvis", "spine",
                 "thorax", "head", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
                 "left_wrist", "neck")


def h36m_item_key(item_name: str) -> tuple[str, str, int]:
    """'S9__Walking 1.54138969__000123' -> ('S9', 'Walking 1', 123)."""
    parts = item_name.split("__")
    if len(parts) != 3 or not parts[0].startswith("S"):
        raise KeyDiffError("invalid_argument", f"H36M item {item_name!r} is not named S<n>__<Action>.<camera>__<frame>")
    action = parts[1].rsplit(".", 1)[0] if "." in parts[1] else parts[1]
    try:
        frame = int(Path(parts[2]).stem)
    except ValueError as error:
        raise KeyDiffError("invalid_argument", f"H36M item {item_name!r} has no frame number in {parts[2]!r}") from error
    return parts[0], action, frame


def h36m_split(subject: str) -> str | None:
    return "train" if subject in H36M_TRAIN_SUBJECTS else "test" if subject in H36M_TEST_SUBJECTS else None


def load_h36m_poses(path: str | Path) -> dict:
    """VideoPose3D's data_3d_h36m.npz: {subject: {action: [F, 32, 3]}} in metres (a pickled dict)."""
    path = Path(path)
    if not path.is_file():
        raise KeyDiffError("unreadable_file", f"H36M pose file {path} does not exist")
    try:
        return np.load(path, allow_pickle=True)["positions_3d"].item()
    except Exception as error:
        raise KeyDiffError("unreadable_file", f"{path} is not VideoPose3D's data_3d_h36m.npz: {error}") from error


def h36m_joints(poses: dict, item_name: str) -> np.ndarray:
    """The 17 evaluation joints [17, 3] (metres) of the frame an item shows."""
    subject, action, frame = h36m_item_key(item_name)
    try:
        sequence = poses[subject][action]
    except KeyError as error:
        raise KeyDiffError("invalid_argument", f"no H36M poses for {subject} / {action!r}") from error
    if not 0 <= frame < len(sequence):
        raise KeyDiffError("invalid_argument", f"frame {frame} outside {subject} / {action!r} ({len(sequence)} frames)")
    return np.asarray(sequence[frame], dtype=np.float64)[list(H36M_JOINTS_17)]


def breed_splits(item_names: Sequence[str], test_every: int = 5) -> dict[str, str]:
    """{item: 'train'|'test'}: items grouped by breed (first name component); every `test_every`-th breed is test."""
    breeds = sorted({name.split("__", 1)[0] for name in item_names})
    test_breeds = set(breeds[test_every - 1 :: test_every])
    return {name: "test" if name.split("__", 1)[0] in test_breeds else "train" for name in item_names}


def pack_items(items: Sequence, split_of: dict[str, str], out_dir: str | Path, category: str,
               joints_of: dict[str, np.ndarray] | None = None, joint_names: Sequence[str] | None = None) -> list[Path]:
    """Write `<out>/<category>/<split>.npz` from `training.prepare.PreparedItem`s (views input-first)."""
    written = []
    for split in ("train", "test"):
        chosen = [item for item in items if split_of.get(item.name) == split]
        if not chosen:
            continue
        joints = np.stack([joints_of[item.name] for item in chosen]).astype(np.float32) if joints_of else None
        height, width = chosen[0].images.shape[1:3]
        data = ViewsSplit(
            images=np.stack([item.images for item in chosen]), masks=np.stack([item.masks for item in chosen]).astype(np.uint8),
            projections=np.stack([item.projections for item in chosen]).astype(np.float32), image_size=(height, width),
            frames=np.asarray(chosen[0].frames, dtype=np.int64), joints=joints,
            groups=np.asarray([item.name.split("__", 1)[0] for item in chosen]), categories=np.asarray([category] * len(chosen)),
            joint_names=np.asarray(joint_names) if joint_names is not None else None,
            joint_scale=np.ones(len(chosen), dtype=np.float32) if joints is not None else None,  # already metres
        )
        path = Path(out_dir) / category / f"{split}.npz"
        save_views(data, path)
        written.append(path)
    return written


def pack_h36m(cache_dir: str | Path, poses_file: str | Path, out_dir: str | Path) -> list[Path]:
    """prepare.py cache of H36M frames + VideoPose3D poses -> `<out>/humanoid/{train,test}.npz`."""
    from training.prepare import load_prepared

    items = load_prepared(Path(cache_dir))
    poses = load_h36m_poses(poses_file)
    split_of = {item.name: h36m_split(h36m_item_key(item.name)[0]) for item in items}
    joints_of = {item.name: h36m_joints(poses, item.name) for item in items if split_of[item.name]}
    return pack_items(items, split_of, out_dir, "humanoid", joints_of, H36M_NAMES_17)


def pack_photos(cache_dir: str | Path, out_dir: str | Path, category: str = "dog") -> list[Path]:
    """prepare.py cache of `<breed>/<photo>` images -> `<out>/<category>/{train,test}.npz` split by breed."""
    from training.prepare import load_prepared

    items = load_prepared(Path(cache_dir))
    return pack_items(items, breed_splits([item.name for item in items]), out_dir, category)
