"""Mesh extraction keeps what the views saw and removes what they contradict: a thin part that Poisson
separates from the body survives (a spider's legs were dropped as "small components"), a membrane outside
the silhouettes and a shell hidden inside the body are removed, and unseen closures inside the silhouettes stay."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from backend.mesh import Mesh
from backend.views.render import has_embree, render_orbit
from frosting.stage3_mesh import SurfacePoints, poisson_mesh
from frosting.trim import trim_faces
from frosting.views import train_views

pytestmark = pytest.mark.skipif(not has_embree(), reason="the orbit renderer needs embreex")


def _views(mesh: trimesh.Trimesh, size: int):
    colors = np.full((len(mesh.vertices), 4), 0.6, dtype=np.float32)
    return train_views(render_orbit(Mesh(vertices=mesh.vertices, faces=mesh.faces, colors=colors),
                                    image_size=size), size)


def _oriented_points(mesh: trimesh.Trimesh, count: int, seed: int) -> SurfacePoints:
    points, face = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return SurfacePoints(points, mesh.face_normals[face], np.full((count, 3), 0.5))


def test_a_thin_part_poisson_separates_from_the_body_survives_extraction():
    body = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    leg = trimesh.creation.cylinder(radius=0.015, height=0.12, sections=12)
    leg.apply_translation([0.45, 0.0, 0.0])                 # beside the body, not touching it
    scene = trimesh.util.concatenate([body, leg])
    views = _views(scene, 64)
    surface = SurfacePoints(*[np.concatenate(parts) for parts in zip(
        *[(s.points, s.normals, s.colors) for s in (_oriented_points(body, 6000, 0), _oriented_points(leg, 400, 1))])])
    mesh = poisson_mesh(surface, depth=7, target_faces=3000, views=views)
    tips = np.array([[0.45, 0.0, 0.05], [0.45, 0.0, -0.05]])
    dist = np.linalg.norm(mesh.vertices[None] - tips[:, None], axis=-1).min(1)
    assert (dist < 0.03).all(), f"the leg's ends are missing from the mesh (nearest vertices {dist})"
    far, _ = cKDTree(trimesh.sample.sample_surface(scene, 50000, seed=2)[0]).query(mesh.vertices)
    assert far.max() < 0.05                                 # and nothing was invented around it


def test_trim_removes_membranes_outside_the_silhouettes_and_hidden_shells_but_keeps_unseen_closures():
    body = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    views = _views(body, 48)
    points = trimesh.sample.sample_surface(body, 6000, seed=0)[0]
    points = points[points[:, 2] > -0.2]                    # the points never saw the bottom cap
    membrane = trimesh.creation.box(extents=[0.5, 0.5, 0.01])
    membrane.apply_translation([0.0, 0.0, 0.5])             # above the object: outside every silhouette
    shell = trimesh.creation.icosphere(subdivisions=2, radius=0.1)   # inside the body, never seen
    whole = trimesh.util.concatenate([body, membrane, shell])
    kept = trim_faces(whole.vertices, whole.faces, points, views)
    n_body = len(body.faces)
    kept_ids = {tuple(f) for f in kept.tolist()}
    body_kept = sum(tuple(f) in kept_ids for f in whole.faces[:n_body].tolist())
    assert body_kept == n_body                              # the unseen bottom cap is inside the hull: kept
    assert len(kept) == n_body                              # the membrane and the inner shell are gone
