"""Joints on a curve skeleton, where an artist puts them: at limb ends, at forks, where a branch bends, and
evenly along long straight runs (a spine, a tail, a neck).

    ends + forks -> limb ends pulled back along their branch by `tip_pullback` x the limb's radius
    -> Ramer-Douglas-Peucker corners of each branch (bends deeper than `bend_tolerance`)
    -> every stretch longer than `spacing` split evenly -> (optionally) tips pushed out by their radius

The result is keypoints plus a 0/1 adjacency of the skeleton's own links, so it goes through the same MST and
assembly as network keypoints and markers: the MST keeps exactly the skeleton's tree (its links cost ~7 bone
lengths less than any other pair) and joins separate pieces by distance.

Why pull limb ends back: the curve skeleton's leaf sits at the centre of the end cap (a head's crown, a muzzle,
a hoof), but artists end a chain where the end part hinges (the head joint at the skull's base, the wrist, the
ankle), about one limb radius further in. On the skeleton benchmark (benchmarks/rigging_geometry.py, 10
artist-rigged characters, with the floor root) pulling back by 0 / 0.5 / 1 / 1.5 / 2 radii gives mean CD-J2J
0.109 / 0.107 / 0.106 / 0.108 / 0.108; it lowers the predicted->true half (extra joints in heads and muzzles,
0.123 -> 0.114) more than it raises the true->predicted one (0.095 -> 0.099). Trex, snake, wasp, character and
knight gain 0.003-0.011, fox and bird do not move, horse and husky lose 0.004 each and the spider 0.001.

Settings were chosen once for all creatures on that benchmark: joint spacing 0.04 / 0.06 / 0.08 / 0.11 / 0.14
gives 0.104 / 0.105 / 0.106 / 0.111 / 0.114 (0.08 keeps the rig near 60 joints against the artists' ~35: denser
joints only lower the true->predicted half), bend tolerance 0.01-0.1 moves it by under 0.001, and pushing tips
out to the surface (tip_reach 1) gives 0.109. Tried and not kept: extra joints at local narrowings of the radius
(knees, wrists; no change), wider spacing on thin sheets such as wings (0.001 worse: birds' wings lose joints),
spacing proportional to the radius (worse), N joints per branch instead of a spacing (0.110-0.121), merging
joints closer than their radius (worse). All lengths are fractions of the mesh's longest side.
"""

from __future__ import annotations

import numpy as np

from .curve_skeleton import CurveSkeleton, branches
from .errors import KeyDiffError

DEFAULT_SPACING = 0.08          # longest stretch between joints along a branch, x longest side
DEFAULT_BEND_TOLERANCE = 0.03   # a branch bends where it leaves its chord by more than this, x longest side
DEFAULT_TIP_REACH = 0.0         # end joints move outward by this x their radius (0: stay at the cap centre)
DEFAULT_TIP_PULLBACK = 1.0      # limb ends move back along their branch by this x the branch's median radius


def curve_joints(
    skeleton: CurveSkeleton,
    *,
    spacing: float = DEFAULT_SPACING,
    bend_tolerance: float = DEFAULT_BEND_TOLERANCE,
    tip_reach: float = DEFAULT_TIP_REACH,
    tip_pullback: float = DEFAULT_TIP_PULLBACK,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [K, 3] and adjacency [K, K] (1 on skeleton links, 0 elsewhere) on `skeleton`."""
    settings = (("spacing", spacing), ("bend_tolerance", bend_tolerance), ("tip_reach", tip_reach),
                ("tip_pullback", tip_pullback))
    for name, value in settings:
        if not (np.isfinite(value) and value >= 0):
            raise KeyDiffError("invalid_argument", f"{name} must be a finite number >= 0, got {value}")
    if not spacing > 0:
        raise KeyDiffError("invalid_argument", f"spacing must be > 0, got {spacing}")
    points = skeleton.points                                                 # [N, 3]
    degree = np.bincount(skeleton.edges.ravel(), minlength=len(points))
    chosen: dict[int, int] = {}                                              # skeleton point -> keypoint index
    links: list[tuple[int, int]] = []
    for path in branches(len(points), skeleton.edges):
        path = _pull_back_limb_end(points, skeleton.radius, degree, path, tip_pullback)
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


def _pull_back_limb_end(points: np.ndarray, radius: np.ndarray, degree: np.ndarray, path: np.ndarray,
                        pullback: float) -> np.ndarray:
    """The branch `path` without its leaf-side stretch of arc length pullback x its median radius, when it runs
    from a fork to a leaf (a limb); at least its fork and one more point stay."""
    ends = degree[path[[0, -1]]]
    if pullback <= 0 or len(path) < 3 or not ((ends[0] == 1) ^ (ends[1] == 1)):
        return path
    leaf_first = path if ends[0] == 1 else path[::-1]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points[leaf_first], axis=0), axis=1))])  # [P]
    first = min(int(np.searchsorted(arc, pullback * float(np.median(radius[path])))), len(path) - 2)
    kept = leaf_first[first:]
    return kept if ends[0] == 1 else kept[::-1]


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
