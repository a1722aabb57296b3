"""A small BVH reader and vectorised forward kinematics, enough to drive synthetic humans with CMU mocap.

Our own parser (the PyPI BVH readers either loop per frame in Python or drop per-joint channel orders, and the
cgspeed metre-scaled CMU files use ZXY on the arms where the others use ZYX). End sites are kept as extra
channel-less nodes because the head's End Site is the only marker of the top of the head.

BVH space is Y up; `BVH_TO_WORLD` carries it into our world (Z up, character facing -Y, its left at +X).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from backend.errors import KeyDiffError

# BVH (x right-of-viewer = character's left, y up, z = character's forward) -> world (x, -z, y): a rotation.
BVH_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

_POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
_ROTATION_AXES = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}


@dataclass(frozen=True)
class BvhClip:
    """A BVH hierarchy plus its motion; node order is file order, parents come before children."""

    names: tuple[str, ...]              # [N] node names; end sites are named "<parent>_End"
    parents: np.ndarray                 # [N] int64, -1 for the root
    offsets: np.ndarray                 # [N, 3] float64, rest offset from the parent, BVH units and axes
    channels: tuple[tuple[str, ...], ...]  # [N] channel names per node (empty for end sites)
    motion: np.ndarray                  # [F, C] float64, one row per frame, C = total channel count
    frame_time: float                   # seconds per frame
    source: str = ""                    # file name it was read from (for error messages and provenance)

    @property
    def is_end_site(self) -> np.ndarray:
        """[N] bool: True for End Site nodes (no channels, not counted as joints in BVH terms)."""
        return np.array([len(c) == 0 for c in self.channels])

    @property
    def num_joints(self) -> int:
        """ROOT + JOINT nodes, End Sites not counted (what BVH tools call the joint count)."""
        return int((~self.is_end_site).sum())

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyDiffError("invalid_argument", f"BVH {self.source!r} has no joint named {name!r}") from None

    def local_rotations(self, frames: np.ndarray | None = None) -> np.ndarray:
        """[F, N, 3, 3] each node's rotation relative to its parent (identity for end sites)."""
        motion = self.motion if frames is None else self.motion[np.asarray(frames)]
        rotations = np.tile(np.eye(3), (motion.shape[0], len(self.names), 1, 1))
        column = 0
        for node, node_channels in enumerate(self.channels):
            rot_cols = [column + i for i, c in enumerate(node_channels) if c in _ROTATION_AXES]
            if rot_cols:
                # BVH lists rotation channels outermost first: intrinsic rotations in file order.
                axes = "".join(_ROTATION_AXES[node_channels[c - column]] for c in rot_cols)
                rotations[:, node] = Rotation.from_euler(axes, motion[:, rot_cols], degrees=True).as_matrix()
            column += len(node_channels)
        return rotations

    def root_translation(self, frames: np.ndarray | None = None) -> np.ndarray:
        """[F, 3] the root's position channels (zeros if the root has none), BVH units and axes."""
        motion = self.motion if frames is None else self.motion[np.asarray(frames)]
        translation = np.zeros((motion.shape[0], 3))
        for i, channel in enumerate(self.channels[0]):
            if channel in _POSITION_CHANNELS:
                translation[:, _POSITION_CHANNELS.index(channel)] = motion[:, i]
        return translation

    def forward_kinematics(self, frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """World positions [F, N, 3] and world rotations [F, N, 3, 3] of every node, in world axes (Z up).

        Loops over nodes (about 50), vectorised over frames. Units stay the file's units.
        """
        local = self.local_rotations(frames)
        num_frames = local.shape[0]
        rot_world = np.empty_like(local)
        pos_world = np.empty((num_frames, len(self.names), 3))
        for node, parent in enumerate(self.parents.tolist()):
            if parent < 0:
                rot_world[:, node] = local[:, node]
                pos_world[:, node] = self.offsets[node] + self.root_translation(frames)
            else:
                rot_world[:, node] = rot_world[:, parent] @ local[:, node]
                pos_world[:, node] = pos_world[:, parent] + np.einsum("fij,j->fi", rot_world[:, parent], self.offsets[node])
        # Change of basis: positions map by M, rotations by M R M^T (same rotation seen in world axes).
        pos_world = pos_world @ BVH_TO_WORLD.T
        rot_world = BVH_TO_WORLD @ rot_world @ BVH_TO_WORLD.T
        return pos_world, rot_world

    def rest_positions(self) -> np.ndarray:
        """[N, 3] node positions with every rotation at zero (the hierarchy's rest pose), world axes."""
        pos = np.zeros((len(self.names), 3))
        for node, parent in enumerate(self.parents.tolist()):
            pos[node] = self.offsets[node] + (pos[parent] if parent >= 0 else 0.0)
        return pos @ BVH_TO_WORLD.T


def read_bvh(path: str | Path) -> BvhClip:
    """Parse a BVH file; any structural problem raises KeyDiffError('unreadable_file') naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyDiffError("unreadable_file", f"cannot read BVH file {str(path)!r}: {exc}") from None
    return parse_bvh(text, source=path.name)


def parse_bvh(text: str, source: str = "<string>") -> BvhClip:
    tokens = text.split()
    pos = 0

    def fail(expected: str) -> KeyDiffError:
        got = tokens[pos] if pos < len(tokens) else "end of file"
        return KeyDiffError("unreadable_file", f"BVH {source!r}: expected {expected}, got {got!r} (token {pos})")

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens) or (expected is not None and tokens[pos] != expected):
            raise fail(repr(expected) if expected else "more data")
        pos += 1
        return tokens[pos - 1]

    def take_float() -> float:
        try:
            return float(take())
        except ValueError:
            pos_back = pos - 1
            raise KeyDiffError("unreadable_file", f"BVH {source!r}: expected a number at token {pos_back}") from None

    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []

    take("HIERARCHY")
    if pos >= len(tokens) or tokens[pos] != "ROOT":
        raise fail("'ROOT'")
    stack: list[int] = []
    while pos < len(tokens) and tokens[pos] != "MOTION":
        keyword = take()
        if keyword in ("ROOT", "JOINT"):
            names.append(take())
        elif keyword == "End":
            take("Site")
            names.append(f"{names[stack[-1]]}_End")
        elif keyword == "}":
            if not stack:
                raise KeyDiffError("unreadable_file", f"BVH {source!r}: unbalanced '}}' at token {pos - 1}")
            stack.pop()
            continue
        else:
            pos -= 1
            raise fail("ROOT, JOINT, End Site or '}'")
        parents.append(stack[-1] if stack else -1)
        take("{")
        take("OFFSET")
        offsets.append([take_float() for _ in range(3)])
        node_channels: tuple[str, ...] = ()
        if keyword != "End":
            take("CHANNELS")
            count = int(take_float())
            node_channels = tuple(take() for _ in range(count))
            unknown = [c for c in node_channels if c not in _ROTATION_AXES and c not in _POSITION_CHANNELS]
            if unknown:
                raise KeyDiffError("unreadable_file", f"BVH {source!r}: unknown channel {unknown[0]!r}")
        channels.append(node_channels)
        stack.append(len(names) - 1)
    if stack:
        raise KeyDiffError("unreadable_file", f"BVH {source!r}: hierarchy has {len(stack)} unclosed '{{'")
    if parents.count(-1) != 1:
        raise KeyDiffError("unreadable_file", f"BVH {source!r}: expected one ROOT, got {parents.count(-1)}")

    take("MOTION")
    take("Frames:")
    num_frames = int(take_float())
    take("Frame")
    take("Time:")
    frame_time = take_float()
    num_channels = sum(len(c) for c in channels)
    values = tokens[pos:]
    if num_frames <= 0 or len(values) != num_frames * num_channels:
        raise KeyDiffError(
            "unreadable_file",
            f"BVH {source!r}: expected {num_frames} frames x {num_channels} channels = "
            f"{num_frames * num_channels} values, got {len(values)}",
        )
    try:
        motion = np.asarray(values, dtype=np.float64).reshape(num_frames, num_channels)
    except ValueError:
        raise KeyDiffError("unreadable_file", f"BVH {source!r}: motion data contains a non-number") from None
    return BvhClip(
        names=tuple(names),
        parents=np.asarray(parents, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.float64),
        channels=tuple(channels),
        motion=motion,
        frame_time=float(frame_time),
        source=source,
    )
