"""Heat-diffusion skinning ("improved"): what a user binding a mesh to a rig relies on."""

from __future__ import annotations


import numpy as np
import pytest
import trimesh

from backend.errors import KeyDiffError
from backend.rig import Rig
from backend.skinning import gaussian_distance_weights
from backend.skinning_improved import (
    SKINNING_METHODS, cluster_by_grid, heat_diffusion_weights, skin_weights, weld_by_position,
)
from tests.conftest import shared_rig_files


def tube(start, end, radius: float, sections: int = 24) -> trimesh.Trimesh:
    """A closed cylinder from start to end (a limb)."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    height = float(np.linalg.norm(end - start))
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    mesh = mesh.subdivide().subdivide()
    z = (end - start) / height
    mesh.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], z))
    mesh.apply_translation((start + end) / 2)
    return mesh


def two_legs() -> tuple[np.ndarray, np.ndarray, Rig, np.ndarray]:
    """A thick left leg and a thin, shorter right leg 0.02 apart: the inner side of the thick leg is nearer the thin
    leg's bone (0.07) than its own (0.2), the case where straight-line distance binds the wrong limb. Bones stop
    0.05 inside the caps, as bones sit inside limbs (a ray grazing a cap plane would be a coin toss)."""
    left, right = tube([-0.22, 0, 0], [-0.22, 0, -1], 0.2), tube([0.05, 0, -0.1], [0.05, 0, -1], 0.05)
    vertices = np.vstack([left.vertices, right.vertices])
    faces = np.vstack([left.faces, right.faces + len(left.vertices)])
    joints = np.array([[0.0, 0, 0.1], [-0.22, 0, -0.05], [-0.22, 0, -0.95], [0.05, 0, -0.15], [0.05, 0, -0.95]])
    rig = Rig(joints, np.array([-1, 0, 1, 0, 3]), ("pelvis", "hip.L", "foot.L", "hip.R", "foot.R"),
              bone_deforms=np.array([False, True, False, True]))
    on_left = np.arange(len(vertices)) < len(left.vertices)
    return vertices, faces, rig, on_left


def test_a_limb_never_takes_weight_from_a_nearer_bone_across_an_air_gap():
    vertices, faces, rig, on_left = two_legs()
    left_bone, right_bone = 1, 3
    side = on_left & (vertices[:, 2] < -0.05) & (vertices[:, 2] > -0.95)   # the leg's wall, caps excluded
    rigid = gaussian_distance_weights(vertices, rig, top_k=1).to_dense()
    assert rigid[side, right_bone].max() == 1.0                         # the failure this method exists for
    # Default (normal penalty): the wall faces away from the other bone, so it never binds to it.
    dense = heat_diffusion_weights(vertices, faces, rig).to_dense()
    assert dense[side, right_bone].max() < 1e-6
    assert dense[side, left_bone].min() > 1 - 1e-6
    # With the ray test, even the flat cap (whose normal is blind to the gap) stays on its own leg.
    seen = heat_diffusion_weights(vertices, faces, rig, visibility_candidates=4).to_dense()
    assert seen[on_left, right_bone].max() < 1e-6
    assert seen[~on_left, right_bone].min() > 1 - 1e-6


def test_weights_blend_smoothly_across_a_joint_and_are_rigid_far_from_it():
    mesh = tube([0, 0, 0], [0, 0, 2], 0.15, sections=16)
    joints = np.array([[0.0, 0, 0], [0, 0, 1], [0, 0, 2]])
    rig = Rig(joints, np.array([-1, 0, 1]), ("a", "b", "c"))
    dense = heat_diffusion_weights(mesh.vertices, mesh.faces, rig).to_dense()
    z = mesh.vertices[:, 2]
    assert dense[z < 0.5, 0].min() > 0.97 and dense[z > 1.5, 1].min() > 0.97
    near_joint = np.abs(z - 1.0) < 0.03
    assert near_joint.any() and 0.2 < dense[near_joint, 0].mean() < 0.8
    order = np.argsort(z)
    ring_means = np.array([dense[order][i:i + 40, 0].mean() for i in range(0, len(z) - 40, 40)])
    assert (np.diff(ring_means) <= 0.02).all()                          # falls along the limb, no bumps


def test_no_vertex_is_left_unweighted_even_in_a_piece_that_sees_no_bone():
    mesh = tube([0, 0, 0], [0, 0, 1], 0.1)
    stray = trimesh.creation.box(extents=[0.1, 0.1, 0.1])
    stray.apply_translation([3.0, 3.0, 3.0])                           # far from every bone
    vertices = np.vstack([mesh.vertices, stray.vertices])
    faces = np.vstack([mesh.faces, stray.faces + len(mesh.vertices)])
    rig = Rig(np.array([[0.0, 0, 0], [0, 0, 0.5], [0, 0, 1]]), np.array([-1, 0, 1]), ("a", "b", "c"))
    weights = heat_diffusion_weights(vertices, faces, rig, visibility_candidates=2)
    np.testing.assert_allclose(weights.weights.sum(axis=1), 1.0, atol=1e-5)
    assert (weights.weights[:, 0] > 0).all()


def test_a_mesh_split_at_seams_gets_the_weights_of_its_welded_copy():
    mesh = tube([0, 0, 0], [0, 0, 2], 0.15, sections=12)
    joints = np.array([[0.0, 0, 0], [0, 0, 1], [0, 0, 2]])
    rig = Rig(joints, np.array([-1, 0, 1]), ("a", "b", "c"))
    split_vertices = mesh.vertices[mesh.faces.ravel()]                  # every face its own three vertices
    split_faces = np.arange(len(split_vertices)).reshape(-1, 3)
    welded = heat_diffusion_weights(mesh.vertices, mesh.faces, rig).to_dense()
    split = heat_diffusion_weights(split_vertices, split_faces, rig).to_dense()
    np.testing.assert_allclose(split, welded[mesh.faces.ravel()], atol=1e-5)
    _, welded_faces, index_map = weld_by_position(split_vertices, split_faces, 1e-9)
    assert index_map.max() + 1 == len(mesh.vertices) and len(welded_faces) == len(mesh.faces)


def test_a_large_mesh_solved_on_a_coarse_proxy_stays_close_to_the_exact_solution():
    mesh = tube([0, 0, 0], [0, 0, 2], 0.15, sections=48).subdivide()
    joints = np.array([[0.0, 0, 0], [0, 0, 0.7], [0, 0, 1.4], [0, 0, 2]])
    rig = Rig(joints, np.array([-1, 0, 1, 2]), ("a", "b", "c", "d"))
    exact = heat_diffusion_weights(mesh.vertices, mesh.faces, rig, max_solve_vertices=10**9).to_dense()
    diagnostics: list = []
    coarse = heat_diffusion_weights(mesh.vertices, mesh.faces, rig, max_solve_vertices=1500, diagnostics=diagnostics)
    assert diagnostics[0].solved_vertices <= 1500 < diagnostics[0].welded_vertices
    assert np.abs(coarse.to_dense() - exact).sum(axis=1).mean() < 0.1
    centroids, faces, cluster = cluster_by_grid(mesh.vertices, mesh.faces, 1500)
    assert len(centroids) <= 1500 and cluster.max() + 1 == len(centroids) and faces.max() < len(centroids)


def test_methods_are_selected_by_name_and_an_unknown_name_is_a_clear_error():
    vertices, faces, rig, _ = two_legs()
    assert set(SKINNING_METHODS) == {"eq9", "improved", "rigid"}
    for method in SKINNING_METHODS:
        weights = skin_weights(method, vertices, faces, rig)
        np.testing.assert_allclose(weights.weights.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(KeyDiffError, match="'bone_heat'"):
        skin_weights("bone_heat", vertices, faces, rig)


def test_bad_meshes_and_rigs_are_rejected_with_a_clear_error():
    vertices, faces, rig, _ = two_legs()
    with pytest.raises(KeyDiffError, match="face indices"):
        heat_diffusion_weights(vertices, faces + len(vertices), rig)
    with pytest.raises(KeyDiffError, match="NaN"):
        heat_diffusion_weights(vertices * np.nan, faces, rig)
    lifeless = Rig(rig.joints, rig.parents, rig.names, bone_deforms=np.zeros(rig.num_bones, bool))
    with pytest.raises(KeyDiffError, match="none deforms"):
        heat_diffusion_weights(vertices, faces, lifeless)
    with pytest.raises(KeyDiffError, match="top_k"):
        heat_diffusion_weights(vertices, faces, rig, top_k=0)


@pytest.mark.parametrize("name", ["single_knight_pack_KnightCharacter.glb", "animals_pack_Horse.glb"])
def test_on_artist_rigs_improved_deforms_closer_to_the_artist_weights_than_eq9(name):
    paths = [p for p in shared_rig_files() if p.name == name]
    if not paths:
        pytest.skip(f"{name} is not in ../shared/data/rigs")
    from backend.export.gltf_reader import load_skinned_gltf
    from backend.metrics import benchmark_poses, skinning_metrics, unit_cube_transform
    from backend.metrics.skeleton import apply_transform

    asset = load_skinned_gltf(paths[0])
    to_unit = unit_cube_transform(asset.mesh.vertices)
    vertices, rig = apply_transform(to_unit, asset.mesh.vertices), asset.rig.transformed(to_unit)
    true = asset.weights.to_dense().astype(np.float64)
    rig = Rig(rig.joints, rig.parents, rig.names, rig.bone_names, rig.bone_deforms & (true.sum(axis=0) > 0))
    poses = benchmark_poses(rig, num_poses=5)
    errors = {
        method: skinning_metrics(vertices, rig, skin_weights(method, vertices, asset.mesh.faces, rig).to_dense(),
                                 true, poses=poses)
        for method in ("eq9", "improved")
    }
    assert errors["improved"].unweighted_vertices == 0
    assert errors["improved"].deformation_error_mean < 0.6 * errors["eq9"].deformation_error_mean


def test_a_separate_piece_without_a_bone_moves_rigidly_with_the_body_it_sits_on():
    body = tube([0, 0, 0], [0, 0, 2], 0.3, sections=16)
    eye = trimesh.creation.icosphere(subdivisions=2, radius=0.08)
    eye.apply_translation([0.33, 0.0, 1.15])                            # on the surface, just past the joint
    vertices = np.vstack([body.vertices, eye.vertices])
    faces = np.vstack([body.faces, eye.faces + len(body.vertices)])
    rig = Rig(np.array([[0.0, 0, 0], [0, 0, 1], [0, 0, 2]]), np.array([-1, 0, 1]), ("a", "b", "c"))
    diagnostics: list = []
    dense = heat_diffusion_weights(vertices, faces, rig, diagnostics=diagnostics).to_dense()
    on_eye = np.arange(len(vertices)) >= len(body.vertices)
    assert diagnostics[0].pieces_carried == 1
    np.testing.assert_allclose(dense[on_eye], np.broadcast_to(dense[on_eye][0], (on_eye.sum(), 2)), atol=1e-6)
    nearest_body = np.argmin(np.linalg.norm(body.vertices - eye.vertices.mean(axis=0), axis=1))
    np.testing.assert_allclose(dense[on_eye][0], dense[nearest_body], atol=0.15)
