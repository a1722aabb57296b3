"""Training views in memory, their on-disk form, and the cache of frozen-backbone features.

A split is one `.npz` file (the "keydiff3d.kpviews" layout) so a training run reads it in one go:

    images       uint8   [N, V, S, S, 3]  the network's views, input view first, object on white
    masks        uint8   [N, V, S, S]     1 on the object
    projections  float32 [N, V, 3, 4]     P = K [R | t] of each view (backend/cameras.py convention)
    image_size   int64   [2]              (height, width) that K refers to (may differ from S)
    frames       int64   [V]              orbit frame of each view (20 = input view)
    joints       float32 [N, J, 3]        ground-truth joints in the canonical frame (evaluation only; may be absent)
    groups       str     [N]              clip / subject / breed id, so evaluation can hold out whole groups
    categories   str     [N]              e.g. "humanoid"
    joint_names  str     [J]              (optional) lets evaluation swap left/right joints for mirror-min
    joint_scale  float32 [N]              (optional) metres per canonical unit, so errors can be reported in mm

Training never reads `joints`: the method is unsupervised.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.errors import KeyDiffError

VIEWS_FORMAT = "keydiff3d.kpviews"
OPTIONAL_ARRAYS = ("joints", "groups", "categories", "joint_names", "joint_scale")


@dataclass
class ViewsSplit:
    images: np.ndarray  # [N, V, S, S, 3] uint8
    masks: np.ndarray  # [N, V, S, S] uint8
    projections: np.ndarray  # [N, V, 3, 4] float32
    image_size: tuple[int, int]  # (height, width) of the camera images
    frames: np.ndarray  # [V] int64
    joints: np.ndarray | None = None  # [N, J, 3] float32
    groups: np.ndarray | None = None  # [N] str
    categories: np.ndarray | None = None  # [N] str
    joint_names: np.ndarray | None = None  # [J] str
    joint_scale: np.ndarray | None = None  # [N] float32, metres per canonical unit

    def __post_init__(self) -> None:
        n, v = self.images.shape[:2]
        if self.images.ndim != 5 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise KeyDiffError("invalid_image", f"views images must be uint8 [N, V, S, S, 3], got {self.images.dtype} {self.images.shape}")
        if self.masks.shape != self.images.shape[:4]:
            raise KeyDiffError("invalid_image", f"masks have shape {self.masks.shape}, expected {self.images.shape[:4]}")
        if self.projections.shape != (n, v, 3, 4):
            raise KeyDiffError("invalid_argument", f"projections have shape {self.projections.shape}, expected {(n, v, 3, 4)}")
        if self.joints is not None and (self.joints.ndim != 3 or self.joints.shape[0] != n or self.joints.shape[2] != 3):
            raise KeyDiffError("invalid_argument", f"joints have shape {self.joints.shape}, expected [{n}, J, 3]")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_views(self) -> int:
        return int(self.images.shape[1])

    def select_views(self, frames: list[int]) -> "ViewsSplit":
        """Keep the views showing `frames` (in that order)."""
        position = {int(f): i for i, f in enumerate(self.frames)}
        missing = [f for f in frames if f not in position]
        if missing:
            raise KeyDiffError("invalid_argument", f"the data has orbit frames {self.frames.tolist()}, not {missing}")
        keep = [position[f] for f in frames]
        return ViewsSplit(self.images[:, keep], self.masks[:, keep], self.projections[:, keep], self.image_size,
                          np.asarray(frames, dtype=np.int64), self.joints, self.groups, self.categories,
                          self.joint_names, self.joint_scale)


def save_views(split: ViewsSplit, path: str | Path) -> None:
    """Write atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(format=np.array(VIEWS_FORMAT), images=split.images, masks=split.masks, projections=split.projections.astype(np.float32),
                  image_size=np.asarray(split.image_size, dtype=np.int64), frames=split.frames.astype(np.int64))
    for name in OPTIONAL_ARRAYS:
        value = getattr(split, name)
        if value is not None:
            arrays[name] = value
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(handle)
    try:
        with open(temp, "wb") as stream:
            np.savez(stream, **arrays)
        os.chmod(temp, 0o644)  # mkstemp makes files private; datasets are shared
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def load_views(path: str | Path) -> ViewsSplit:
    path = Path(path)
    if not path.is_file():
        raise KeyDiffError("unreadable_file", f"training views file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
        if str(data["format"]) != VIEWS_FORMAT:
            raise KeyDiffError("unreadable_file", f"{path} is not a {VIEWS_FORMAT} file")
        optional = {name: (data[name] if name in data.files else None) for name in OPTIONAL_ARRAYS}
        return ViewsSplit(data["images"], data["masks"], data["projections"], tuple(int(x) for x in data["image_size"]),
                          data["frames"], **optional)
    except KeyDiffError:
        raise
    except Exception as error:
        raise KeyDiffError("unreadable_file", f"training views file {path} cannot be read: {error}") from error


def mirror_split(split: ViewsSplit) -> ViewsSplit:
    """The same samples reflected through the plane x = 0 of the canonical frame, seen by the same orbit.

    Flipping every image left-right is what the reflected scene looks like to the reflected cameras, so the
    new projections are P' = F P X, with X = diag(-1, 1, 1, 1) (reflect the world back) and F the pixel flip
    u -> width - u: a point at world x seen at pixel (u, v) reappears, at world -x, at (width - u, v). Joints
    are reflected too; left and right joint names are not swapped, so evaluation must not read them.
    """
    width = split.image_size[1]
    flip = np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    reflect = np.diag([-1.0, 1.0, 1.0, 1.0]).astype(np.float32)
    projections = (flip @ split.projections @ reflect).astype(np.float32)
    joints = None if split.joints is None else split.joints * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    return ViewsSplit(np.ascontiguousarray(split.images[:, :, :, ::-1]), np.ascontiguousarray(split.masks[:, :, :, ::-1]),
                      projections, split.image_size, split.frames, joints, split.groups, split.categories, None,
                      split.joint_scale)


def split_path(data_dir: str | Path, split: str) -> Path:
    """`<data>/<split>.npz`, or `<data>/<split>/views.npz`."""
    data_dir = Path(data_dir)
    for candidate in (data_dir / f"{split}.npz", data_dir / split / "views.npz"):
        if candidate.is_file():
            return candidate
    raise KeyDiffError("unreadable_file", f"no {split} split in {data_dir} (expected {split}.npz or {split}/views.npz)")


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [..., S, S, 3] -> float [..., 3, S, S] in [0, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return tensor.movedim(-1, -3)


def _cache_key(path: Path, frames: list[int], backbone_id: str) -> str:
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{frames}|{backbone_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_features(split: ViewsSplit, source: Path, cache_dir: Path, backbone, backbone_id: str, batch: int = 16) -> list[torch.Tensor]:
    """Frozen-backbone features of every view, computed once and kept on disk as float16.

    Returns layers[l]: [N, V, C_l, h_l, w_l] float16. The cache file name hashes the data file (path,
    size, mtime), the views and the backbone, so changing any of them recomputes.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_file = cache_dir / f"features_{_cache_key(source, split.frames.tolist(), backbone_id)}.pt"
    if cache_file.is_file():
        return torch.load(cache_file, map_location="cpu", weights_only=True)
    chunks: list[list[torch.Tensor]] = []
    for first in range(0, len(split), batch):
        images = images_to_tensor(split.images[first : first + batch])  # [b, V, 3, S, S]
        chunks.append([layer.half() for layer in backbone(images)])
    layers = [torch.cat([chunk[i] for chunk in chunks]) for i in range(len(chunks[0]))]
    handle, temp = tempfile.mkstemp(dir=cache_dir, suffix=".pt.tmp")
    os.close(handle)
    try:
        torch.save(layers, temp)
        os.replace(temp, cache_file)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return layers
