"""The curve skeleton of a mesh: the thin centre-line tree a creature's bones run along, found by geometry alone.

    surface voxels -> filled solid -> small pieces dropped -> centre-line tree (TEASAR) -> leaves pulled back
    to their end-cap centres -> short spurs pruned

Why voxels: meshes from games and scans are rarely clean (open seams, eyes and teeth as separate shells,
self-intersections). A solid of voxels swallows all of that: touching parts fuse, seams under a voxel close.

Why TEASAR (Sato et al. 2000, the method kimimaro uses for neurons) and not morphological thinning: thinning
(scikit-image's Lee 1994) deletes a limb whose cross-section is an even number of voxels wide (scikit-image
issue #3757, open): a straight capsule thinned to 3 voxels. TEASAR cannot lose a limb. From a root at one
extremity of each piece, it repeatedly takes the voxel geodesically farthest from the root that no branch
covers yet, and adds its path back to the tree along a route that pays heavily for leaving the middle (cost
grows as the distance to the surface falls); each new path covers every voxel within
`cover_scale` x (its local radius) + `cover_voxels`. Each step is one scipy shortest-path result, reused.

Why drop sheet duplicates: on a sheet (an insect's wing, a fin) every voxel is one voxel from the outside, so a
TEASAR path covers only a narrow strip and the next far corner starts a second line beside the first. A thin
leaf branch that runs within the covered strip of another line for most of its length repeats it.

Why prune by thickness: a bump on the surface makes a spur whose length is about the local radius. A real limb
sticks out well beyond the body's radius where it joins, so a terminal branch shorter than `spur_ratio` times
the radius at its fork (plus two voxels of staircase noise) is a bump, not a limb.

Everything is measured in units of the mesh's longest bounding-box side, so one setting serves any scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from .errors import KeyDiffError

DEFAULT_RESOLUTION = 96        # voxels along the longest side
DEFAULT_SPUR_RATIO = 1.5       # a terminal branch shorter than this x the radius at its fork is a bump
DEFAULT_MIN_PIECE = 0.02       # solid pieces smaller than this fraction of the largest are dropped (eyes, teeth)
DEFAULT_COVER_SCALE = 1.5     # a centre-line path covers voxels within this x its radius ...
DEFAULT_COVER_VOXELS = 2.0    # ... plus this many voxels
MAX_RESOLUTION = 256
MIN_RESOLUTION = 32
MAX_SOLID_VOXELS = 150_000    # above this the resolution drops (a ball at 96 across has ~460k voxels)
_CENTRE_PENALTY, _CENTRE_EXPONENT = 1e5, 4   # step cost x (1 + P (1 - r / r_max)^e): paths keep to the middle
_PAD = 3                       # empty voxels around the mesh so closing and thinning never touch the border
_FLAT = 1e-4                   # a mesh thinner than this x its longest side has no inside
_SHEET_RADIUS = 1.5            # voxels: a branch this thin runs on a sheet (a wing, a fin) or is a wire


@dataclass(frozen=True)
class CurveSkeleton:
    points: np.ndarray     # [N, 3] float64 skeleton voxel centres, in the mesh's frame
    radius: np.ndarray     # [N] float64 distance from each point to the outside of the solid (local thickness)
    edges: np.ndarray      # [E, 2] int64 point pairs; a forest (one tree per solid piece), no cycles
    pitch: float           # voxel size, mesh units
    size: float            # the mesh's longest bounding-box side, mesh units

    def graph(self) -> nx.Graph:
        graph = nx.Graph()
        graph.add_nodes_from(range(len(self.points)))
        graph.add_edges_from(self.edges.tolist())
        return graph


def curve_skeleton(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    spur_ratio: float = DEFAULT_SPUR_RATIO,
    min_piece: float = DEFAULT_MIN_PIECE,
    cover_scale: float = DEFAULT_COVER_SCALE,
    cover_voxels: float = DEFAULT_COVER_VOXELS,
) -> CurveSkeleton:
    """The curve skeleton of the triangle mesh (vertices [V, 3], faces [F, 3]); see the module docstring."""
    vertices, faces = _check_mesh(vertices, faces)
    if not (isinstance(resolution, (int, np.integer)) and MIN_RESOLUTION <= resolution <= MAX_RESOLUTION):
        wanted = f"an integer in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]"
        raise KeyDiffError("invalid_argument", f"resolution must be {wanted}, got {resolution!r}")
    for name, value in (("spur_ratio", spur_ratio), ("min_piece", min_piece), ("cover_scale", cover_scale),
                        ("cover_voxels", cover_voxels)):
        if not (np.isfinite(value) and value >= 0):
            raise KeyDiffError("invalid_argument", f"{name} must be a finite number >= 0, got {value}")

    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    size = float((hi - lo).max())
    solid, origin, pitch = _voxelise(vertices, faces, lo, hi, size / resolution)
    if solid.sum() > MAX_SOLID_VOXELS:     # a fat body: coarser voxels keep the shortest paths to about a second
        coarser = max(MIN_RESOLUTION, int(resolution * (MAX_SOLID_VOXELS / solid.sum()) ** (1 / 3)))
        solid, origin, pitch = _voxelise(vertices, faces, lo, hi, size / coarser)
    solid = _drop_small_pieces(solid, min_piece)

    voxels, depth, edges = centre_line_tree(solid, cover_scale, cover_voxels)   # [N, 3], [N], [E, 2]
    if len(voxels) < 2:
        raise KeyDiffError(
            "invalid_mesh",
            f"the mesh's solid is {int(solid.sum())} voxel(s) at {size / pitch:.0f} voxels across: too small or "
            "too thin to follow; place joints with --markers instead",
        )
    radius = depth * pitch                                                      # [N]
    points = origin + (voxels + 0.5) * pitch                                    # [N, 3]
    points, radius, edges = _retract_tips(points, radius, edges)
    points, radius, edges = _prune_spurs(points, radius, edges, spur_ratio, 2.0 * pitch)
    reach = cover_scale * radius + cover_voxels * pitch                         # [N] what each point covered
    points, radius, edges = _drop_sheet_duplicates(points, radius, edges, reach, _SHEET_RADIUS * pitch)
    return CurveSkeleton(points, radius, edges, float(pitch), size)


# --- voxels -----------------------------------------------------------------------------------------------
def _voxelise(vertices: np.ndarray, faces: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              pitch: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(solid [X, Y, Z] bool, origin [3] of voxel (0, 0, 0)'s corner, pitch) with _PAD empty voxels around."""
    origin = lo - _PAD * pitch
    shape = tuple(int(n) for n in np.ceil((hi - origin) / pitch).astype(np.int64) + _PAD)
    return solid_voxels(vertices, faces, origin, pitch, shape), origin, float(pitch)


def solid_voxels(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, pitch: float,
                 shape: tuple[int, int, int]) -> np.ndarray:
    """[X, Y, Z] bool: the surface voxels and every voxel they enclose.

    Open seams up to a voxel wide are sealed by a closing, but only what the sealed shell encloses is kept, not
    the closing's own bridges: two legs a voxel apart stay two legs.
    """
    surface = surface_voxels(vertices, faces, origin, pitch, shape)
    closed = ndimage.binary_closing(surface, structure=np.ones((3, 3, 3), bool)) | surface
    sealed_inside = ndimage.binary_fill_holes(closed) & ~closed
    return ndimage.binary_fill_holes(surface) | sealed_inside


def surface_voxels(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, pitch: float,
                   shape: tuple[int, int, int]) -> np.ndarray:
    """[X, Y, Z] bool: voxels any triangle passes through, by sampling each triangle on a barycentric lattice
    finer than half a voxel (triangles are grouped by lattice size, so there is one numpy pass per size)."""
    corners = vertices[faces]                                                   # [F, 3, 3]
    longest_edge = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)
    steps = np.maximum(np.ceil(longest_edge / (0.5 * pitch)).astype(np.int64), 1)  # [F]
    grid = np.zeros(shape, bool)
    limit = np.array(shape) - 1
    for step in np.unique(steps):
        i, j = np.meshgrid(np.arange(step + 1), np.arange(step + 1), indexing="ij")
        inside = i + j <= step
        barycentric = np.stack([i[inside], j[inside], step - i[inside] - j[inside]], axis=1) / step  # [P, 3]
        chosen = np.flatnonzero(steps == step)
        for block in np.array_split(chosen, max(1, len(chosen) * len(barycentric) // 2_000_000 + 1)):
            samples = np.einsum("pc,tcd->tpd", barycentric, corners[block]).reshape(-1, 3)   # [T*P, 3]
            index = np.clip(np.floor((samples - origin) / pitch).astype(np.int64), 0, limit)
            grid[index[:, 0], index[:, 1], index[:, 2]] = True
    return grid


def _drop_small_pieces(solid: np.ndarray, min_piece: float) -> np.ndarray:
    labels, count = ndimage.label(solid, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return solid
    sizes = np.bincount(labels.ravel())[1:]                                     # [count]
    keep = np.zeros(count + 1, bool)
    keep[1:] = sizes >= min_piece * sizes.max()
    return keep[labels]


# --- graph ------------------------------------------------------------------------------------------------
_HALF_NEIGHBOURHOOD = np.array(
    [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) > (0, 0, 0)], np.int64
)                                                                                # [13, 3]: each pair once


def centre_line_tree(
    solid: np.ndarray, cover_scale: float = DEFAULT_COVER_SCALE, cover_voxels: float = DEFAULT_COVER_VOXELS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TEASAR centre lines of a voxel solid [X, Y, Z]: (voxels [N, 3] int64, depth [N] distance to the outside
    in voxels, edges [E, 2] into voxels), one tree per 26-connected piece."""
    cells = np.argwhere(solid)                                                  # [M, 3]
    depth = ndimage.distance_transform_edt(solid)[tuple(cells.T)]               # [M] >= 1
    rows, cols, lengths = _neighbour_pairs(cells, solid.shape)
    m = len(cells)
    steps = csr_matrix((lengths, (rows, cols)), shape=(m, m))
    off_centre = 1.0 + _CENTRE_PENALTY * (1.0 - depth / depth.max()) ** _CENTRE_EXPONENT       # [M]
    costly = csr_matrix((lengths * 0.5 * (off_centre[rows] + off_centre[cols]), (rows, cols)), shape=(m, m))

    count, piece = connected_components(steps, directed=False)
    deepest = _argmax_per_piece(depth, piece, count)
    from_deepest = dijkstra(steps, directed=False, indices=deepest, min_only=True)
    far = _argmax_per_piece(from_deepest, piece, count)                        # the farthest voxel: an extremity
    geodesic = dijkstra(steps, directed=False, indices=far, min_only=True)     # [M] from each piece's root
    _, towards_root, _ = dijkstra(costly, directed=False, indices=far, min_only=True, return_predecessors=True)

    on_tree = np.zeros(m, bool)
    on_tree[far] = True
    uncovered = np.ones(m, bool)
    links: list[tuple[int, int]] = []
    _cover(cells, depth, far, uncovered, cover_scale, cover_voxels)
    while uncovered.any():
        target = int(np.argmax(np.where(uncovered, geodesic, -1.0)))
        path = [target]
        while not on_tree[path[-1]]:                                           # back to the tree (short walks)
            path.append(int(towards_root[path[-1]]))
        links.extend(zip(path[:-1], path[1:]))
        on_tree[path] = True
        uncovered[target] = False
        _cover(cells, depth, np.array(path), uncovered, cover_scale, cover_voxels)

    kept = np.flatnonzero(on_tree)
    index = np.full(m, -1, np.int64)
    index[kept] = np.arange(len(kept))
    edges = index[np.array(links, np.int64).reshape(-1, 2)]
    return cells[kept], depth[kept], edges


def _argmax_per_piece(values: np.ndarray, piece: np.ndarray, count: int) -> np.ndarray:
    """[count] index of the largest value in each piece (piece labels 0..count-1)."""
    order = np.lexsort((values, piece))                                        # by piece, then by value
    last = np.searchsorted(piece[order], np.arange(count), side="right") - 1
    return order[last]


def _cover(voxels: np.ndarray, depth: np.ndarray, path: np.ndarray, uncovered: np.ndarray,
           scale: float, extra: float) -> None:
    """Mark uncovered voxels within scale x depth + extra of a path voxel as covered (in place).

    Asked from the uncovered side (each looks up its few nearest path voxels) so a fat body costs one query per
    voxel still open, not one ball per path voxel that would list the whole body again and again.
    """
    reach = scale * depth[path] + extra                                        # [P]
    open_cells = np.flatnonzero(uncovered)
    k = min(4, len(path))
    distance, nearest = cKDTree(voxels[path]).query(voxels[open_cells], k=k, distance_upper_bound=float(reach.max()))
    distance, nearest = distance.reshape(len(open_cells), k), nearest.reshape(len(open_cells), k)
    found = nearest < len(path)                                                # misses come back as len(path)
    within = found & (distance <= reach[np.minimum(nearest, len(path) - 1)])
    uncovered[open_cells[within.any(axis=1)]] = False


def _neighbour_pairs(voxels: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, lengths): every 26-neighbour pair of voxels [N, 3] once, with its centre distance in voxels."""
    index = np.full(shape, -1, np.int64)
    index[tuple(voxels.T)] = np.arange(len(voxels))
    rows, cols, lengths = [], [], []
    for offset in _HALF_NEIGHBOURHOOD:
        other = index[tuple((voxels + offset).T)]                               # padding keeps it in range
        found = other >= 0
        rows.append(np.flatnonzero(found))
        cols.append(other[found])
        lengths.append(np.full(int(found.sum()), float(np.linalg.norm(offset))))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(lengths)


def branches(num_points: int, edges: np.ndarray) -> list[np.ndarray]:
    """Point-index paths between key points (degree != 2) of a forest; a closed path cannot occur in a forest.

    Each path starts and ends at a key point and passes only through degree-2 points. A piece with no key point
    other than its two ends is one path; an isolated point is a path of one.
    """
    graph = nx.Graph()
    graph.add_nodes_from(range(num_points))
    graph.add_edges_from(edges.tolist())
    degree = np.array([graph.degree(n) for n in range(num_points)])
    paths: list[np.ndarray] = []
    seen_edges: set[tuple[int, int]] = set()
    for start in np.flatnonzero(degree != 2):
        if degree[start] == 0:
            paths.append(np.array([start]))
            continue
        for first in graph.neighbors(int(start)):
            if (min(start, first), max(start, first)) in seen_edges:
                continue
            path = [int(start), int(first)]
            while degree[path[-1]] == 2:
                a, b = graph.neighbors(path[-1])
                path.append(b if a == path[-2] else a)
            seen_edges.update((min(p, q), max(p, q)) for p, q in zip(path[:-1], path[1:]))
            paths.append(np.array(path))
    return paths


def _path_length(points: np.ndarray, path: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points[path], axis=0), axis=1).sum())


def _retract_tips(points: np.ndarray, radius: np.ndarray,
                  edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pull every leaf back to the centre of its end cap: drop the leaf-side points whose inscribed ball holds
    the leaf (TEASAR paths run out to the surface; a limb's last joint sits inside it). A branch that is all
    cap (a bump reached from the body) shrinks to its fork."""
    degree = np.bincount(edges.ravel(), minlength=len(points))
    keep = np.ones(len(points), bool)
    for path in branches(len(points), edges):
        if len(path) < 2:
            continue
        leaf_ends = [path[::-1]] if degree[path[-1]] == 1 else []
        leaf_ends += [path] if degree[path[0]] == 1 else []
        cut = np.zeros(len(path), bool)                                      # along `path`
        for leaf_first in leaf_ends:
            from_leaf = np.linalg.norm(points[leaf_first] - points[leaf_first[0]], axis=1)   # [P]
            inside_cap = from_leaf < radius[leaf_first]
            first_out = int(np.argmin(inside_cap)) if not inside_cap.all() else len(path) - 1
            dropped = np.zeros(len(path), bool)
            dropped[:first_out] = True
            cut |= dropped if leaf_first[0] == path[0] else dropped[::-1]
        if cut.all():                                                        # a blob: keep its middle point
            cut[len(path) // 2] = False
        keep[path[cut]] = False
    return _subset(points, radius, edges, keep)


def _drop_sheet_duplicates(points: np.ndarray, radius: np.ndarray, edges: np.ndarray, reach: np.ndarray,
                           thin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop, shortest first and one at a time, thin leaf branches (median radius <= thin) that lie within
    `reach` [N] of the rest of the skeleton along more than half their length (module docstring)."""
    while True:
        degree = np.bincount(edges.ravel(), minlength=len(points))
        duplicate, shortest = None, np.inf
        for path in branches(len(points), edges):
            ends = degree[path[[0, -1]]]
            if len(path) < 3 or not ((ends[0] == 1) ^ (ends[1] == 1)):
                continue                                                     # not a leaf-to-fork branch
            leaf_side = path[:-1] if ends[0] == 1 else path[1:]
            if np.median(radius[leaf_side]) > thin:
                continue
            rest = np.ones(len(points), bool)
            rest[leaf_side] = False
            gap = cKDTree(points[rest]).query(points[leaf_side])[0]         # [P-1]
            length = _path_length(points, path)
            if (gap < reach[leaf_side]).mean() > 0.5 and length < shortest:
                duplicate, shortest = leaf_side, length
        if duplicate is None:
            return points, radius, edges
        keep = np.ones(len(points), bool)
        keep[duplicate] = False
        points, radius, edges = _subset(points, radius, edges, keep)
        reach = reach[keep]


def _subset(points: np.ndarray, radius: np.ndarray, edges: np.ndarray,
            keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    live = np.flatnonzero(keep)
    remap = np.full(len(points), -1, np.int64)
    remap[live] = np.arange(len(live))
    kept_edges = remap[edges]
    return points[live], radius[live], kept_edges[(kept_edges >= 0).all(axis=1)]


def _prune_spurs(points: np.ndarray, radius: np.ndarray, edges: np.ndarray, spur_ratio: float,
                 slack: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove terminal branches shorter than spur_ratio x (radius at their fork) + slack, repeatedly, so a bump
    on a bump goes too; a piece is never pruned below its longest path (the last branch at a fork stays)."""
    keep = np.ones(len(points), bool)
    while True:
        live = np.flatnonzero(keep)
        remap = np.full(len(points), -1, np.int64)
        remap[live] = np.arange(len(live))
        live_edges = remap[edges]
        live_edges = live_edges[(live_edges >= 0).all(axis=1)]
        degree = np.bincount(live_edges.ravel(), minlength=len(live))
        removed = False
        fork_spurs: dict[int, list[np.ndarray]] = {}
        for path in branches(len(live), live_edges):
            ends = degree[path[[0, -1]]]
            if len(path) < 2 or not ((ends[0] == 1) ^ (ends[1] == 1)) or max(ends) < 3:
                continue                                                     # not a leaf-to-fork branch
            fork, leaf_first = (path[-1], True) if ends[0] == 1 else (path[0], False)
            spur = path[:-1] if leaf_first else path[1:]
            if _path_length(points[live], path) < spur_ratio * radius[live][fork] + slack:
                fork_spurs.setdefault(int(fork), []).append(live[spur])
        for fork, spurs in fork_spurs.items():
            # never strip every branch of a fork at once: the longest of them may be the piece's real end
            if len(spurs) >= degree[fork] - 1:
                spurs = sorted(spurs, key=len)[:-1]
            for spur in spurs:
                keep[spur] = False
                removed = True
        if not removed:
            break
    return _subset(points, radius, edges, keep)


# --- input checks -----------------------------------------------------------------------------------------
def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 3 or not np.isfinite(vertices).all():
        raise KeyDiffError("invalid_mesh", f"vertices must be finite with shape (V >= 3, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0 or faces.min() < 0 or faces.max() >= len(vertices):
        raise KeyDiffError("invalid_mesh", f"faces must have shape (F > 0, 3) with indices in [0, {len(vertices) - 1}]")
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    if extent.max() <= 0 or extent.min() <= _FLAT * extent.max():
        raise KeyDiffError(
            "invalid_mesh",
            f"the mesh is flat (bounding box {np.round(extent, 6).tolist()}): a geometric skeleton needs a solid "
            "with an inside; place joints with --markers instead",
        )
    return vertices, faces
