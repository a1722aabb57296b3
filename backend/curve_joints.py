"""Joints on a curve skeleton, where an artist puts them: at limb ends, at forks, where a branch bends, and
evenly along long straight runs (a spine, a tail, a neck).

    ends + forks -> Ramer-Douglas-Peucker corners of each branch (bends deeper than `bend_tolerance`)
    -> every stretch longer than `spacing` split evenly -> (optionally) tips pushed out by their radius

The result is keypoints plus a 0/1 adjacency of the skeleton's own links, so it goes through the same MST and
assembly as network keypoints and markers: the MST keeps exactly the skeleton's tree (its links cost ~7 bone
lengths less than any other pair) and joins separate pieces by distance.

Settings were chosen once for all creatures on the skeleton benchmark (benchmarks/rigging_geometry.py, 10
artist-rigged characters, mean CD-J2J 0.112 at these defaults): joint spacing 0.06 / 0.11 / 0.14 gives
0.110 / 0.116 / 0.121 (0.08 trades a little of that for fewer bones), bend tolerance 0.02-0.08 moves it by
under 0.002, and pushing tips out to the surface (tip_reach 1) gives 0.114: artists end a chain inside the
last cap, where the curve skeleton's leaves already sit. All lengths are fractions of the mesh's longest side.
"""

from __future__ import annotations

import numpy as np

from .curve_skeleton import CurveSkeleton, branches
from .errors import KeyDiffError

DEFAULT_SPACING = 0.08          # longest stretch between joints along a branch, x longest side
DEFAULT_BEND_TOLERANCE = 0.03   # a branch bends where it leaves its chord by more than this, x longest side
DEFAULT_TIP_REACH = 0.0         # end joints move outward by this x their radius (0: stay at the cap centre)


def curve_joints(
    skeleton: CurveSkeleton,
    *,
    spacing: float = DEFAULT_SPACING,
    bend_tolerance: float = DEFAULT_BEND_TOLERANCE,
    tip_reach: float = DEFAULT_TIP_REACH,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [K, 3] and adjacency [K, K] (1 on skeleton links, 0 elsewhere) on `skeleton`."""
    for name, value in (("spacing", spacing), ("bend_tolerance", bend_tolerance), ("tip_reach", tip_reach)):
        if not (np.isfinite(value) and value >= 0):
            raise KeyDiffError("invalid_argument", f"{name} must be a finite number >= 0, got {value}")
    if not spacing > 0:
        raise KeyDiffError("invalid_argument", f"spacing must be > 0, got {spacing}")
    points = skeleton.points                                                 # [N, 3]
    chosen: dict[int, int] = {}                                              # skeleton point -> keypoint index
    links: list[tuple[int, int]] = []
    for path in branches(len(points), skeleton.edges):
        picks = _picks_along(points[path], spacing * skeleton.size, bend_tolerance * skeleton.size)
        ids = [chosen.setdefault(int(path[p]), len(chosen)) for p in picks]
        links.extend(zip(ids[:-1], ids[1:]))
    order = np.empty(len(chosen), np.int64)
    order[list(chosen.values())] = list(chosen.keys())
    keypoints = points[order].copy()                                         # [K, 3]
    adjacency = np.zeros((len(order), len(order)))
    if links:
        pairs = np.array(links)
        adjacency[pairs[:, 0], pairs[:, 1]] = adjacency[pairs[:, 1], pairs[:, 0]] = 1.0
    np.fill_diagonal(adjacency, 0.0)
    _push_tips(keypoints, adjacency, skeleton.radius[order] * tip_reach)
    return keypoints, adjacency


def _picks_along(path_points: np.ndarray, spacing: float, tolerance: float) -> list[int]:
    """Indices into one branch [P, 3]: both ends, its corners, and even splits of stretches longer than spacing."""
    corners = _douglas_peucker(path_points, tolerance)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path_points, axis=0), axis=1))])   # [P]
    picks = [corners[0]]
    for a, b in zip(corners[:-1], corners[1:]):
        pieces = int(np.ceil((arc[b] - arc[a]) / spacing - 1e-9))
        if pieces > 1:
            targets = arc[a] + (arc[b] - arc[a]) * np.arange(1, pieces) / pieces
            inner = np.searchsorted(arc, targets).clip(a + 1, b - 1)
            picks.extend(int(i) for i in np.unique(inner))
        picks.append(b)
    return sorted(set(picks))


def _douglas_peucker(path_points: np.ndarray, tolerance: float) -> list[int]:
    """Corner indices of a polyline [P, 3] (first and last included) by Ramer-Douglas-Peucker."""
    keep = {0, len(path_points) - 1}
    stack = [(0, len(path_points) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        chord = path_points[b] - path_points[a]
        offsets = path_points[a + 1:b] - path_points[a]                      # [m, 3]
        length = np.linalg.norm(chord)
        if length > 0:
            distance = np.linalg.norm(np.cross(offsets, chord / length), axis=1)
        else:
            distance = np.linalg.norm(offsets, axis=1)
        worst = int(np.argmax(distance))
        if distance[worst] > tolerance:
            split = a + 1 + worst
            keep.add(split)
            stack.extend([(a, split), (split, b)])
    return sorted(keep)


def _push_tips(keypoints: np.ndarray, adjacency: np.ndarray, reach: np.ndarray) -> None:
    """Move each end joint (one link) outward along its last link by `reach` [K], in place."""
    degree = (adjacency > 0).sum(axis=1)
    tips = np.flatnonzero(degree == 1)
    if len(tips) == 0:
        return
    neighbour = np.argmax(adjacency[tips] > 0, axis=1)
    direction = keypoints[tips] - keypoints[neighbour]                       # [T, 3]
    length = np.linalg.norm(direction, axis=1, keepdims=True)
    unit = np.divide(direction, length, out=np.zeros_like(direction), where=length > 0)
    keypoints[tips] += unit * reach[tips, None]
