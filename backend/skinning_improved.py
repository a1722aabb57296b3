"""Heat-diffusion skinning ("improved"): weights that follow the surface, so limbs close together do not bleed.

Eq. 9 (backend/skinning.py) weights a vertex by its straight-line distance to each bone, so a thigh vertex
next to the other thigh takes weight from it. Here each bone's weight is the steady state of heat flowing
over the mesh surface (Baran & Popović 2007, "bone heat", which Blender's "With Automatic Weights" also
implements), written for our arrays and made robust:

    (L + diag(A·H)) w_b = A·H·p_b        for every deforming bone b

L: cotangent stiffness of the surface; A: vertex areas (HEAT_MASS × one-ring area); p_b[i] = 1 when b is
vertex i's source bone (ties share); H[i] = 1 / e_i², e_i that bone's distance. Heat therefore only travels
along the surface: it cannot jump the air gap between two legs, and it blends smoothly across joints over a
width set by the limb's own thickness.

The source bone is the nearest by Blender's normal-penalised distance e = d / (½·(cos θ + 1.001)), θ the angle
between the vertex normal and the direction bone → vertex: a bone behind the surface (on the far side of the
tangent plane, e.g. the other leg) counts as ~2000× farther. Blender also demands that a ray from the vertex to
the bone crosses no surface; `visibility_candidates` > 0 does that (Embree through trimesh, up to that many
bones tried, nearest first), but it is off by default: predicted skeletons, and some artist ones, put bones
outside thin parts (a snake's mouth bone lies in the open mouth), and then the ray test hands whole parts to
the wrong bone. Measured on data/rigs (mean deformation error over 10 characters, artist deform set): normal
penalty only 0.0206, with rays (4 candidates) 0.0419, Blender's own rule (nearest only, must be visible)
0.0397; without the snake the three are within 0.0129–0.0134.

A separate piece of the mesh that no bone passes through (an eye, a button) is not diffused at all: it moves
rigidly with the body vertex nearest to it (`_carry_boneless_pieces`).

Robustness where Blender fails ("Bone Heat Weighting: failed to find solution for one or more bones"):
- vertices are welded by position first (glTF splits them at UV/normal seams, which cuts the surface apart);
- a connected piece of the mesh without a heat source (possible only with the ray test: a sealed-in part)
  binds to its nearest bone by penalised distance instead of being left unweighted;
- a vertex whose heat values all come out negligible binds to its nearest bone, so no vertex is ever left
  unweighted.

Speed: one sparse LU factorisation (SuperLU) of a [W, W] matrix, then D right-hand sides. Meshes with more
than `max_solve_vertices` welded vertices are solved on a coarse proxy (`cluster_by_grid`: vertices clustered
on a grid, still connected by the mesh's own triangles, so heat still cannot cross a gap wider than a cell);
every vertex takes its cluster's weights. 200k vertices × 50 bones run in ~0.4 s on 2 shared cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

from .errors import KeyDiffError
from .rig import Rig, SkinWeights
from .skinning import DEFAULT_TOP_K, gaussian_distance_weights

DEFAULT_VISIBILITY_CANDIDATES = 0     # nearest bones tried for ray visibility (0: normal penalty only)
DEFAULT_MAX_SOLVE_VERTICES = 8_000    # above this the heat equation is solved on a coarse proxy
DEFAULT_WEIGHT_FLOOR = 0.01           # weights below this are dropped before the top-k cut
WELD_FRACTION = 1e-6                  # positions closer than this × object size are one vertex
NORMAL_PENALTY_EPS = 1.001            # Blender's: a bone straight behind the surface is 2000× farther
TIE_FRACTION = 1e-4                   # bones within this relative distance of the nearest are sources too
MIN_DISTANCE_FRACTION = 1e-4          # distances are clamped to this × object size (a vertex on a bone)
# Heat balance and clean-up, measured on data/rigs (artist deform set, mean deformation error over 10 characters):
# vertex mass = HEAT_MASS × one-ring area: 0.33 → 0.0303, 0.7 → 0.0270, 1 → 0.0260, 1.5 → 0.0256, 2 → 0.0259, 3 → 0.0266;
# fading heat values in between FADE_END and FADE_START: 0.0256 → 0.0255.
HEAT_MASS = 1.5
FADE_START, FADE_END = 0.05, 0.025


@dataclass(frozen=True)
class HeatDiagnostics:
    welded_vertices: int          # distinct positions (the raw vertex count when solved on a proxy)
    solved_vertices: int          # unknowns of the linear system (coarse proxy when smaller than welded)
    vertices_without_visible_bone: int
    pieces_bound_by_distance: int  # connected pieces with no visible bone at all
    pieces_carried: int = 0        # bone-less pieces (eyes, buttons) moved rigidly with the surface they sit on


def heat_diffusion_weights(
    vertices: np.ndarray,
    faces: np.ndarray,
    rig: Rig,
    *,
    top_k: int = DEFAULT_TOP_K,
    visibility_candidates: int = DEFAULT_VISIBILITY_CANDIDATES,
    max_solve_vertices: int = DEFAULT_MAX_SOLVE_VERTICES,
    weight_floor: float = DEFAULT_WEIGHT_FLOOR,
    diagnostics: list | None = None,
) -> SkinWeights:
    """Sparse skin weights of the mesh (vertices [V, 3], faces [F, 3]) for the deforming bones of `rig`.

    Returns k = min(top_k, rig.num_bones) slots per vertex, heaviest first, rows summing to 1 (same layout
    as `gaussian_distance_weights`). Pass a list as `diagnostics` to receive one HeatDiagnostics.
    """
    vertices, faces = _validate_mesh(vertices, faces)
    if int(top_k) != top_k or top_k < 1:
        raise KeyDiffError("invalid_argument", f"top_k must be a positive integer, got {top_k}")
    if int(visibility_candidates) != visibility_candidates or visibility_candidates < 0:
        raise KeyDiffError("invalid_argument", f"visibility_candidates must be an integer >= 0, got {visibility_candidates}")
    if not 0 <= weight_floor < 0.5:
        raise KeyDiffError("invalid_argument", f"weight_floor must lie in [0, 0.5), got {weight_floor}")
    deforming = np.flatnonzero(rig.bone_deforms)
    if len(deforming) == 0:
        raise KeyDiffError("invalid_rig", f"the rig has {rig.num_bones} bones but none deforms: nothing to skin to")
    size = float(np.linalg.norm(np.ptp(np.concatenate([vertices, rig.joints]), axis=0)))
    if size <= 0:
        raise KeyDiffError("invalid_mesh", "all vertices and joints coincide: nothing to measure distances by")

    if len(vertices) > max_solve_vertices:      # grid cells weld seam copies too: no separate weld needed
        welded, welded_faces, index_map = cluster_by_grid(vertices, faces, max_solve_vertices)
        num_welded = len(vertices)
    else:
        welded, welded_faces, index_map = weld_by_position(vertices, faces, WELD_FRACTION * size)
        num_welded = len(welded)
        if num_welded < 4:
            raise KeyDiffError("invalid_mesh", f"the mesh has {num_welded} distinct vertex positions; a surface needs at least 4")
    heads, tails = rig.bone_heads[deforming], rig.bone_tails[deforming]
    normals = _vertex_normals(welded, welded_faces)
    stiffness, areas = _cotangent_laplacian(welded, welded_faces)
    sources = _heat_sources(welded, welded_faces, normals, heads, tails, size, visibility_candidates, stiffness)
    dense = _solve(stiffness, areas, sources, len(deforming))                     # [W, D]
    riders = _carry_boneless_pieces(welded, dense, sources.piece, heads, tails)
    empty = dense.sum(axis=1) <= 0
    dense[empty, sources.nearest[empty]] = 1.0
    if diagnostics is not None:
        diagnostics.append(HeatDiagnostics(num_welded, len(welded), sources.without_visible, sources.pieces_by_distance, riders))
    # Faint heat is noise, not influence: drop it below FADE_END and fade it in up to FADE_START (as Blender).
    dense = np.where(dense > FADE_START, dense, np.where(dense > FADE_END, (dense - FADE_END) * FADE_START / (FADE_START - FADE_END), 0.0))
    empty = dense.sum(axis=1) <= 0
    dense[empty, sources.nearest[empty]] = 1.0
    solved = _sparse_top_k(dense, deforming, rig.num_bones, top_k, weight_floor)
    return SkinWeights(solved.indices[index_map], solved.weights[index_map], rig.num_bones)


def cluster_by_grid(vertices: np.ndarray, faces: np.ndarray, target: int):
    """(centroids [C, 3], faces [F', 3], cluster [W]) with C <= target: a vertex-clustering proxy of the mesh.

    Vertices sharing a grid cell become their centroid; triangles keep connecting clusters, so the proxy is
    still a surface and heat still cannot cross an air gap wider than a cell. The cell is grown until the
    occupied cells number at most `target`.
    """
    lo = vertices.min(axis=0)
    stride = max(1, len(faces) // 20_000)                            # the area from a sample of faces is enough
    corners = vertices[faces[::stride]]
    area = 0.5 * stride * float(np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum())
    extent = float(np.ptp(vertices, axis=0).max())
    # A surface of area S meets about 1.5·S / cell² cells of a grid; start just above the target's cell size.
    cell = max(np.sqrt(1.6 * area / target), 1e-9 * max(extent, 1e-30)) if area > 0 else extent / np.sqrt(target)
    while True:
        _, cluster = np.unique(_cell_keys(np.floor((vertices - lo) / cell)), return_inverse=True)
        count = int(cluster.max()) + 1
        if count <= target:
            break
        cell *= 1.05 * np.sqrt(count / target)
    members = np.bincount(cluster, minlength=count)
    centroids = np.stack([np.bincount(cluster, vertices[:, a], count) for a in range(3)], axis=1) / members[:, None]
    coarse = cluster[faces]
    keep = (coarse[:, 0] != coarse[:, 1]) & (coarse[:, 1] != coarse[:, 2]) & (coarse[:, 0] != coarse[:, 2])
    return centroids, coarse[keep], cluster


def weld_by_position(vertices: np.ndarray, faces: np.ndarray, tolerance: float):
    """(welded [W, 3], faces [F', 3] without collapsed triangles, index_map [V] -> [0, W)).

    Vertices whose coordinates round to the same multiple of `tolerance` become one (seam copies are exact).
    """
    keys = _cell_keys(np.floor(vertices / tolerance + 0.5))
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    welded_faces = inverse[faces]
    keep = (
        (welded_faces[:, 0] != welded_faces[:, 1])
        & (welded_faces[:, 1] != welded_faces[:, 2])
        & (welded_faces[:, 0] != welded_faces[:, 2])
    )
    return vertices[first], welded_faces[keep], inverse


def _cell_keys(cells: np.ndarray) -> np.ndarray:
    """[N] one int64 per integer grid cell [N, 3] (1-D unique is several times faster than unique(axis=0));
    when the grid is too large to number in int64, the cells' rank in lexicographic order."""
    cells = cells.astype(np.int64)
    cells -= cells.min(axis=0)
    dims = cells.max(axis=0) + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) >= 2.0**62:
        return np.unique(cells, axis=0, return_inverse=True)[1].reshape(-1)
    return (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]


# --- geometry ---------------------------------------------------------------------------------------------
def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[W, 3] area-weighted unit normals of the welded surface (zero for vertices in no face)."""
    face_normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    face_normals /= np.maximum(np.linalg.norm(face_normals, axis=1, keepdims=True), 1e-30)
    normals = np.zeros_like(vertices)
    for corner in range(3):
        normals += np.stack([np.bincount(faces[:, corner], face_normals[:, a], len(vertices)) for a in range(3)], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def _cotangent_laplacian(vertices: np.ndarray, faces: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """(stiffness L [W, W], vertex areas A [W]).

    L is the cotangent (P1 finite-element) stiffness, positive semi-definite for any triangle mesh, so with
    heat sources in every connected piece the system is positive definite. A is HEAT_MASS × the area of the
    triangles around each vertex: the larger the mass, the stronger the sources against diffusion and the
    narrower the blend across a joint (see HEAT_MASS for the measured choice).
    """
    num = len(vertices)
    corners = vertices[faces]                                          # [F, 3, 3]
    edge_a = corners[:, [1, 2, 0]] - corners                           # corner k -> k+1
    edge_b = corners[:, [2, 0, 1]] - corners                           # corner k -> k+2
    cross = np.linalg.norm(np.cross(edge_a, edge_b), axis=2)           # [F, 3] = 2 × area at every corner
    dots = np.einsum("fki,fki->fk", edge_a, edge_b)
    cot = dots / np.maximum(cross, 1e-30)                              # cot of the angle at corner k
    # The angle at corner k is opposite the edge (k+1, k+2).
    rows = faces[:, [1, 2, 0]].ravel()
    cols = faces[:, [2, 0, 1]].ravel()
    weights = sp.coo_matrix((0.5 * cot.ravel(), (rows, cols)), shape=(num, num)).tocsr()
    weights = weights + weights.T
    stiffness = sp.diags(np.asarray(weights.sum(axis=1)).ravel()) - weights
    areas = np.bincount(faces.ravel(), np.repeat(cross[:, 0] / 2.0, 3), num)
    areas *= HEAT_MASS
    areas = np.maximum(areas, 1e-12 * max(float(areas.max()), 1e-30))
    return stiffness.tocsr(), areas


# --- heat sources -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sources:
    vertex: np.ndarray       # [S] welded vertex of each (vertex, bone) source pair
    bone: np.ndarray         # [S] deforming-bone slot of the pair
    share: np.ndarray        # [S] p: 1 / (number of sources of that vertex)
    heat: np.ndarray         # [W] H = (number of sources) / e², 0 where the vertex is no source
    nearest: np.ndarray      # [W] nearest bone slot by penalised distance, visible or not
    piece: np.ndarray        # [W] connected piece of each vertex
    without_visible: int     # vertices whose candidate bones were all hidden
    pieces_by_distance: int  # connected pieces bound by distance because no bone was visible from them


def _heat_sources(vertices, faces, normals, heads, tails, size, candidates, stiffness) -> _Sources:
    num = len(vertices)
    m = min(max(candidates, 1), len(heads))
    nearest, energy = _nearest_bones(vertices, normals, heads, tails, m)          # [W, m] each, nearest first
    chosen = np.full(num, -1, np.int64)                                            # rank of the visible bone
    if candidates == 0 or not _has_ray_tracer():
        chosen[:] = 0
    else:
        intersector = _intersector(vertices, faces)
        eps = MIN_DISTANCE_FRACTION * size
        for rank in range(m):
            todo = np.flatnonzero(chosen < 0)
            if len(todo) == 0:
                break
            bones = nearest[todo, rank]
            targets = _closest_points(vertices[todo], heads[bones], tails[bones])
            visible = ~_occluded(intersector, vertices[todo], targets, eps)
            chosen[todo[visible]] = rank
    without_visible = int((chosen < 0).sum())

    # A connected piece with no visible bone binds to its nearest bones, so nothing is left without heat.
    adjacency = stiffness.copy()
    adjacency.setdiag(0)
    num_pieces, piece = connected_components(adjacency, directed=False)
    has_source = np.bincount(piece, chosen >= 0, num_pieces) > 0
    orphan = ~has_source[piece]
    chosen[orphan] = 0

    rows = np.flatnonzero(chosen >= 0)
    chosen_energy = energy[rows, chosen[rows]]                                     # [R]
    ranks = np.arange(m)[None, :]
    # Ties: later candidates as near as the chosen one (a vertex at a joint is equally near both bones).
    ties = (ranks >= chosen[rows, None]) & (energy[rows] <= chosen_energy[:, None] * (1.0 + TIE_FRACTION))
    ties[np.arange(len(rows)), chosen[rows]] = True
    count = ties.sum(axis=1)                                                       # [R] >= 1
    pair_row, pair_rank = np.nonzero(ties)
    heat = np.zeros(num)
    clamped = np.maximum(chosen_energy, MIN_DISTANCE_FRACTION * size)
    heat[rows] = count / clamped**2
    return _Sources(
        vertex=rows[pair_row], bone=nearest[rows[pair_row], pair_rank], share=1.0 / count[pair_row],
        heat=heat, nearest=nearest[:, 0], piece=piece, without_visible=without_visible, pieces_by_distance=int((~has_source).sum()),
    )


def _nearest_bones(points, normals, heads, tails, m: int, block_elements: int = 1 << 19):
    """([W, m] bone slots, [W, m] penalised distances), nearest first, computed in blocks of vertices.

    e = d / (½·(cos θ + 1.001)) with cos θ = n · (p − q)/d, q the nearest point of the bone to p.
    """
    centre = np.concatenate([heads, tails]).mean(axis=0)
    a, u = heads - centre, tails - heads                                           # [D, 3]
    len2 = np.einsum("di,di->d", u, u)
    inv_len2 = np.divide(1.0, len2, out=np.zeros_like(len2), where=len2 > 0)
    a_dot_u, a_len2 = np.einsum("di,di->d", a, u), np.einsum("di,di->d", a, a)
    stacked = np.concatenate([a, u], axis=0).T                                     # [3, 2D]
    num_bones = len(heads)
    chunk = max(256, block_elements // num_bones)
    slots = np.empty((len(points), m), np.int64)
    energies = np.empty((len(points), m))
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk] - centre                                   # [c, 3]
        n = normals[start:start + chunk]
        pa_pu = p @ stacked                                                        # [c, 2D]
        na_nu = n @ stacked
        t = np.clip((pa_pu[:, num_bones:] - a_dot_u) * inv_len2, 0.0, 1.0)          # [c, D]
        p_len2 = np.einsum("ci,ci->c", p, p)[:, None]
        # |p − a − t u|² and (p − a − t u)·n without forming [c, D, 3] arrays
        dist2 = p_len2 - 2.0 * pa_pu[:, :num_bones] + a_len2 - t * (2.0 * (pa_pu[:, num_bones:] - a_dot_u) - t * len2)
        dist = np.sqrt(np.maximum(dist2, 0.0))
        along_normal = np.einsum("ci,ci->c", p, n)[:, None] - na_nu[:, :num_bones] - t * na_nu[:, num_bones:]
        cosine = np.divide(along_normal, dist, out=np.ones_like(dist), where=dist > 0)
        energy = dist / (0.5 * (np.clip(cosine, -1.0, 1.0) + NORMAL_PENALTY_EPS))
        picked = np.argpartition(energy, m - 1, axis=1)[:, :m] if m < num_bones else np.tile(np.arange(num_bones), (len(p), 1))
        picked_energy = np.take_along_axis(energy, picked, axis=1)
        order = np.argsort(picked_energy, axis=1, kind="stable")
        slots[start:start + chunk] = np.take_along_axis(picked, order, axis=1)
        energies[start:start + chunk] = np.take_along_axis(picked_energy, order, axis=1)
    return slots, energies


def _closest_points(points: np.ndarray, heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """[n, 3] nearest point of segment i to point i (row-wise pairs)."""
    u = tails - heads
    len2 = np.einsum("ni,ni->n", u, u)
    t = np.divide(np.einsum("ni,ni->n", points - heads, u), len2, out=np.zeros_like(len2), where=len2 > 0)
    return heads + np.clip(t, 0.0, 1.0)[:, None] * u


def _has_ray_tracer() -> bool:
    """Visibility needs Embree (embreex); without it trimesh's pure-Python tracer is far too slow."""
    try:
        import trimesh.ray

        return bool(getattr(trimesh.ray, "has_embree", False))
    except ImportError:
        return False


def _intersector(vertices: np.ndarray, faces: np.ndarray):
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    return RayMeshIntersector(trimesh.Trimesh(vertices, faces, process=False))


def _occluded(intersector, origins: np.ndarray, targets: np.ndarray, eps: float) -> np.ndarray:
    """[n] bool: the open segment origin → target crosses the mesh (ends excluded by eps)."""
    direction = targets - origins
    length = np.linalg.norm(direction, axis=1)
    occluded = np.zeros(len(origins), bool)
    far = np.flatnonzero(length > 3.0 * eps)
    if len(far) == 0:
        return occluded
    unit = direction[far] / length[far, None]
    starts = origins[far] + eps * unit
    locations, ray_index, _ = intersector.intersects_location(starts, unit, multiple_hits=False)
    if len(ray_index):
        hit = np.linalg.norm(locations - starts[ray_index], axis=1)
        occluded[far[ray_index]] = hit < length[far[ray_index]] - 2.0 * eps
    return occluded


# --- bone-less pieces -------------------------------------------------------------------------------------
BONE_SAMPLES = 16   # points per bone for the "does a bone pass through this piece" test


def _carry_boneless_pieces(vertices, dense, piece, heads, tails) -> int:
    """Give every vertex of a piece that no bone passes through the weights of the nearest vertex of a piece
    that one does; returns how many pieces were carried. Changes `dense` [W, D] in place.

    Eyes, buttons and armour plates are modelled as separate closed pieces sitting on the body; heat
    diffusion would bind each of their vertices to whichever bone it happens to face, and the part would
    shear when posed. An artist binds them rigidly to the body under them: on data/rigs, 15 of the 17 pieces
    without a bone through them carry identical weights on all their vertices (the other two are a bird's
    22-vertex eyes), and this rule lowered the mean deformation error from 0.0255 to 0.0206. "A bone passes through" is
    tested on the piece's bounding box (BONE_SAMPLES points per bone), which errs towards skinning a piece.
    """
    num_pieces = int(piece.max()) + 1
    if num_pieces < 2:
        return 0
    lo = np.full((num_pieces, 3), np.inf)
    hi = np.full((num_pieces, 3), -np.inf)
    np.minimum.at(lo, piece, vertices)
    np.maximum.at(hi, piece, vertices)
    t = np.linspace(0.0, 1.0, BONE_SAMPLES)[:, None, None]
    samples = (heads[None] * (1.0 - t) + tails[None] * t).reshape(-1, 3)           # [S, 3]
    has_bone = np.zeros(num_pieces, bool)
    for start in range(0, num_pieces, 4096):                                       # [P, S] blocks
        block = slice(start, start + 4096)
        inside = (samples[None] >= lo[block, None]) & (samples[None] <= hi[block, None])
        has_bone[block] = inside.all(axis=2).any(axis=1)
    riders = ~has_bone[piece]
    if not has_bone.any() or not riders.any():
        return 0
    from scipy.spatial import cKDTree

    body = np.flatnonzero(~riders)
    rider = np.flatnonzero(riders)
    gap, nearest = cKDTree(vertices[body]).query(vertices[rider])                   # [R]
    # Per piece, the rider vertex closest to the body decides: the piece sits there.
    order = np.lexsort((gap, piece[rider]))
    first = order[np.r_[True, np.diff(piece[rider][order]) != 0]]
    anchor = np.full(num_pieces, -1, np.int64)
    anchor[piece[rider][first]] = body[nearest[first]]
    dense[rider] = dense[anchor[piece[rider]]]
    return int(len(first))


# --- solve ------------------------------------------------------------------------------------------------
def _solve(stiffness: sp.csr_matrix, areas: np.ndarray, sources: _Sources, num_bones: int) -> np.ndarray:
    """[W, D] heat solution for every deforming bone at once (one factorisation, D right-hand sides)."""
    num = len(areas)
    system = (stiffness + sp.diags(areas * sources.heat)).tocsc()
    rhs = np.zeros((num, num_bones))
    np.add.at(rhs, (sources.vertex, sources.bone), areas[sources.vertex] * sources.heat[sources.vertex] * sources.share)
    return np.clip(splu(system).solve(rhs), 0.0, None)


def _sparse_top_k(dense: np.ndarray, deforming: np.ndarray, num_bones: int, top_k: int, floor: float) -> SkinWeights:
    """SkinWeights from [V, d] heat values per deforming-bone slot: floor, top-k, renormalise (max kept)."""
    num_slots = min(top_k, num_bones)
    k = min(num_slots, dense.shape[1])
    totals = dense.sum(axis=1, keepdims=True)
    share = dense / np.maximum(totals, 1e-300)
    if k < dense.shape[1]:
        picked = np.argpartition(-share, k - 1, axis=1)[:, :k]
    else:
        picked = np.tile(np.arange(dense.shape[1]), (len(dense), 1))
    values = np.take_along_axis(share, picked, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    picked, values = np.take_along_axis(picked, order, 1), np.take_along_axis(values, order, 1)
    values[:, 1:][values[:, 1:] < floor] = 0.0                                     # the heaviest always stays
    values[:, 0] = np.maximum(values[:, 0], 1e-12)
    values /= values.sum(axis=1, keepdims=True)
    indices = np.zeros((len(dense), num_slots), np.int32)
    weights = np.zeros((len(dense), num_slots), np.float32)
    indices[:, :k] = np.where(values > 0, deforming[picked], 0)
    weights[:, :k] = values
    return SkinWeights(indices, weights, num_bones)


def _validate_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise KeyDiffError("invalid_mesh", f"vertices must have shape (V, 3) with V > 0, got {vertices.shape}")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise KeyDiffError("invalid_mesh", f"{bad} of {len(vertices)} vertices have NaN or infinite coordinates")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0 or not np.issubdtype(faces.dtype, np.integer):
        raise KeyDiffError("invalid_mesh", f"faces must be integer triangles of shape (F, 3) with F > 0, got {faces.shape}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise KeyDiffError("invalid_mesh", f"face indices must lie in [0, {len(vertices) - 1}], got [{faces.min()}, {faces.max()}]")
    return vertices, faces.astype(np.int64)


# --- selection by name ------------------------------------------------------------------------------------
SKINNING_METHODS = ("eq9", "improved", "rigid")


def skin_weights(method: str, vertices: np.ndarray, faces: np.ndarray, rig: Rig, **options) -> SkinWeights:
    """Skin weights by method name: "eq9" (the paper's Gaussian distance, backend/skinning.py), "improved"
    (heat diffusion, this module) or "rigid" (weight 1 on the nearest bone segment: the floor)."""
    if method == "eq9":
        return gaussian_distance_weights(vertices, rig, **options)
    if method == "improved":
        return heat_diffusion_weights(vertices, faces, rig, **options)
    if method == "rigid":
        return gaussian_distance_weights(vertices, rig, top_k=1, **options)
    raise KeyDiffError("invalid_argument", f"skinning method must be one of {SKINNING_METHODS}, got {method!r}")
