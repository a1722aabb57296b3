"""Cleaning a Poisson surface by the evidence it came from (Frosting's density-quantile cleaning and its
removal of connected components not seen in the training views, done with the level-set points).

Poisson closes every gap between the oriented points with smooth membranes: between a spider's legs and
its body, such webbing was 27% of the surface, 0.08 (in [-1, 1] units) from the true mesh on average.
The level-set points are samples of the surface the training views saw, so
- a face is *supported* when a level point lies within TRIM_SPACINGS median point spacings of its centroid;
- an unsupported face that also falls outside the silhouettes (outside the mask in more views than the
  visual hull's slack) is invented geometry and is removed. Unsupported faces inside every silhouette stay:
  they close parts no camera saw (the underside of an object), as Poisson intends;
- a connected component is kept when at least COMPONENT_SEEN of its faces are supported (Frosting keeps
  components visible in `connected_components_vis_th` = 0.5 of their faces for single objects), so thin
  parts that Poisson separated from the body (legs, antennae) survive, and hidden inner shells do not.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .hull import views_against
from .views import TrainViews

TRIM_SPACINGS = 5.0
COMPONENT_SEEN = 0.5


def point_spacing(points: np.ndarray) -> float:
    """Median distance from a level point to its nearest other point (on up to 20k points)."""
    sample = points[np.random.default_rng(0).choice(len(points), size=min(len(points), 20000), replace=False)]
    dist, _ = cKDTree(sample).query(sample, k=2)
    return max(float(np.median(dist[:, 1])) * np.sqrt(len(sample) / len(points)), 1e-9)


def outside_votes(points: np.ndarray, views: TrainViews) -> np.ndarray:
    """[P] number of views in which each point projects outside the mask grown by 1 px (or the image)."""
    pts = torch.from_numpy(points).to(views.viewmats)
    # masks grown by one pixel: a surface point on the outline can fall on a pixel the object covers < 50%
    grown = torch.nn.functional.max_pool2d(views.masks[:, None], 3, stride=1, padding=1)[:, 0]
    return views_against(views, pts, grown).cpu().numpy()


def trim_faces(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, views: TrainViews) -> np.ndarray:
    """Faces [F', 3] of `faces` that are supported by `points` or inside the silhouettes, in seen components."""
    centroids = vertices[faces].mean(1)                                                   # [F, 3]
    dist, _ = cKDTree(points).query(centroids, k=1)
    supported = dist <= TRIM_SPACINGS * point_spacing(points)                             # [F]
    invented = ~supported & (outside_votes(centroids, views) > len(views) // 10)
    faces, supported = faces[~invented], supported[~invented]
    label = _face_components(faces, len(vertices))
    seen = np.bincount(label, weights=supported.astype(float)) / np.maximum(np.bincount(label), 1)
    return faces[seen[label] >= COMPONENT_SEEN]


def _face_components(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """[F] connected-component label of each face (faces sharing a vertex are connected)."""
    f = len(faces)
    rows = np.repeat(np.arange(f), 3)
    graph = coo_matrix((np.ones(3 * f), (rows, faces.reshape(-1))), shape=(f, num_vertices)).tocsr()
    _, vertex_label = connected_components(graph.T @ graph, directed=False)
    return vertex_label[faces[:, 0]]
