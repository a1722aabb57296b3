"""Keypoints made mirror-symmetric across a plane (step 2 of backend/symmetry): snap, pair, complete."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KeyDiffError
from ..skeleton import DEFAULT_MERGE_FRACTION
from .plane import CENTRE, LEFT, RIGHT, MirrorPlane

DEFAULT_SNAP = DEFAULT_MERGE_FRACTION / 2  # keypoints this close to the plane (x diagonal) land on it: a mirror
                                           # pair closer than that would be merged by build_skeleton anyway
DEFAULT_PAIR = 0.04                     # a keypoint pairs with a reflected keypoint up to this x diagonal away
DEFAULT_COMPLETE = 0.1                  # an unpaired keypoint is mirrored when its image is this close to the body's
                                        # keypoints on the other side (x diagonal; joint spacing is ~0.05 of it)


@dataclass(frozen=True)
class KeypointMirror:
    plane: MirrorPlane
    side: np.ndarray       # [K] int8 LEFT / CENTRE / RIGHT of each symmetrised keypoint
    partner: np.ndarray    # [K] int64 index of the mirror keypoint, -1 on the plane and for unpaired keypoints



def symmetrise_keypoints(
    keypoints: np.ndarray, adjacency: np.ndarray, plane: MirrorPlane, object_size: float,
    *, snap: float = DEFAULT_SNAP, pair: float = DEFAULT_PAIR, complete: float = DEFAULT_COMPLETE,
) -> tuple[np.ndarray, np.ndarray, KeypointMirror]:
    """Keypoints [K, 3] and adjacency [K, K] made mirror-symmetric across `plane` where they nearly are.

    snap, pair: fractions of `object_size` (the bounding-box diagonal in rig-mesh) - how close to the plane a
    keypoint lands on it, and how far a reflected keypoint may be from its partner.
    """
    keypoints = np.asarray(keypoints, np.float64)
    adjacency = np.asarray(adjacency, np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 3 or not np.isfinite(keypoints).all():
        raise KeyDiffError("invalid_keypoints", f"keypoints must be finite with shape (K, 3), got {keypoints.shape}")
    num = len(keypoints)
    if adjacency.shape != (num, num):
        raise KeyDiffError("invalid_keypoints", f"adjacency must have shape ({num}, {num}), got {adjacency.shape}")
    if not (np.isfinite(object_size) and object_size > 0):
        raise KeyDiffError("invalid_argument", f"object_size must be a positive length, got {object_size}")
    for name, value in (("snap", snap), ("pair", pair), ("complete", complete)):
        if not (np.isfinite(value) and value >= 0):
            raise KeyDiffError("invalid_argument", f"symmetry {name} must be a finite number >= 0, got {value}")

    side = plane.side_of(keypoints, snap * object_size)                       # [K]
    partner = _pair_up(keypoints, side, plane, pair * object_size)             # [K]
    keypoints, adjacency, side, partner = _complete(keypoints, adjacency, side, partner, plane,
                                                    complete * object_size)
    num = len(keypoints)
    symmetric = keypoints.copy()
    symmetric[side == CENTRE, plane.axis] = plane.offset
    left = np.flatnonzero((partner >= 0) & (side == LEFT))
    right = partner[left]
    mean_left = (keypoints[left] + plane.reflect(keypoints[right])) / 2.0     # [P, 3]
    symmetric[left] = mean_left
    symmetric[right] = plane.reflect(mean_left)

    mirror = np.where(partner >= 0, partner, np.arange(num))                   # [K'] index of the mirror keypoint
    weights = np.maximum(adjacency, adjacency.T)
    weights = (weights + weights[np.ix_(mirror, mirror)]) / 2.0               # mirror-image edges: one weight
    return symmetric, weights, KeypointMirror(plane, side, partner)


def _complete(keypoints: np.ndarray, adjacency: np.ndarray, side: np.ndarray, partner: np.ndarray,
              plane: MirrorPlane, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unpaired off-plane keypoints whose mirror image falls within `radius` of a keypoint on the other side (a
    limb is there: one leg got a joint more than the other) gain a mirror copy, appended after the K originals;
    a copy's links are its original's links, mirrored. Returns keypoints [K', 3], adjacency [K', K'], side [K'],
    partner [K']."""
    lonely = np.flatnonzero((side != CENTRE) & (partner < 0))
    if len(lonely) == 0:
        return keypoints, adjacency, side, partner
    images = plane.reflect(keypoints[lonely])                                 # [U, 3]
    gaps = np.linalg.norm(images[:, None, :] - keypoints[None, :, :], axis=2)  # [U, K]
    opposite = side[None, :] == -side[lonely][:, None]
    lonely = lonely[(np.where(opposite, gaps, np.inf).min(axis=1) <= radius)]
    if len(lonely) == 0:
        return keypoints, adjacency, side, partner
    num, extra = len(keypoints), len(lonely)
    copies = num + np.arange(extra)                                          # [U] indices of the new keypoints
    mirror = np.where(partner >= 0, partner, np.arange(num))                   # [K] mirror index (self: unpaired)
    mirror[lonely] = copies
    grown = np.zeros((num + extra, num + extra))                              # [K', K']
    grown[:num, :num] = adjacency
    grown[np.ix_(copies, mirror)] = adjacency[lonely]                         # u~k  =>  copy(u) ~ mirror(k)
    grown = np.maximum(grown, grown.T)
    partner = np.concatenate([partner, lonely])
    partner[lonely] = copies
    side = np.concatenate([side, -side[lonely]]).astype(np.int8)
    return np.vstack([keypoints, plane.reflect(keypoints[lonely])]), grown, side, partner


def _pair_up(keypoints: np.ndarray, side: np.ndarray, plane: MirrorPlane, radius: float) -> np.ndarray:
    """[K] partner index or -1: left and right keypoints matched closest-first (reflected distance <= radius),
    each at most once; a mutual nearest pair is always matched, and the rest among what remains."""
    partner = np.full(len(keypoints), -1, np.int64)
    left, right = np.flatnonzero(side == LEFT), np.flatnonzero(side == RIGHT)
    if len(left) == 0 or len(right) == 0:
        return partner
    gaps = np.linalg.norm(plane.reflect(keypoints[left])[:, None, :] - keypoints[right][None, :, :], axis=2)
    rows, cols = np.nonzero(gaps <= radius)                                  # candidate pairs [C]
    order = np.argsort(gaps[rows, cols], kind="stable")
    for row, col in zip(rows[order].tolist(), cols[order].tolist()):         # C is small: a few per keypoint
        a, b = left[row], right[col]
        if partner[a] < 0 and partner[b] < 0:
            partner[a], partner[b] = b, a
    return partner


