"""The floor root game engines expect (backend/floor_root.py) and limb ends where artists end a chain
(curve_joints' tip_pullback): where they go, that nothing is skinned to the floor bone, and rig-mesh's bundle
with it still validates and reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.curve_joints import curve_joints
from backend.curve_skeleton import curve_skeleton
from backend.errors import KeyDiffError
from backend.export.bundle import read_bundle_weights, read_rig_document, rig_from_document
from backend.export.gltf_reader import load_skinned_gltf
from backend.export.gltf_validate import has_gltf_validator, validate_gltf
from backend.floor_root import ROOT_BONE, add_floor_root, ground_point
from backend.pipeline.markers import save_markers
from backend.pipeline.rig_mesh import RigMeshOptions, rig_mesh
from backend.rig import Rig
from backend.skinning_improved import skin_weights

from conftest import shared_rig_files


def standing_figure() -> trimesh.Trimesh:
    """A body on two legs, feet on z = 0, the file's origin on the floor between the feet (a game asset's)."""
    body = trimesh.creation.capsule(height=0.6, radius=0.2, count=[12, 12])
    body.apply_translation((0, 0, 1.3))
    legs = []
    for x in (-0.15, 0.15):
        leg = trimesh.creation.capsule(height=0.8, radius=0.08, count=[12, 12])
        leg.apply_translation((x, 0, 0.48))
        legs.append(leg)
    figure = trimesh.util.concatenate([body, *legs])
    figure.apply_translation((0, 0, -figure.vertices[:, 2].min()))
    return figure


def chain_rig() -> Rig:
    joints = np.array([[0, 0, 1.0], [0, 0, 1.5], [0, 0, 0.5], [0, 0, 0.0]])
    rig = Rig(joints, np.array([-1, 0, 0, 2]), ("root", "head", "knee", "foot"))
    return Rig(rig.joints, rig.parents, rig.names, bone_deforms=np.array([True, True, False]))


def test_the_ground_point_is_the_origin_when_the_origin_lies_on_the_floor_under_the_body() -> None:
    vertices = standing_figure().vertices
    np.testing.assert_allclose(ground_point(vertices, np.array([0.05, 0.0, 0.0])), [0.05, 0.0, 0.0], atol=1e-9)
    # a handle a little below the lowest point (a flying creature's) is kept where the artist put it
    np.testing.assert_allclose(ground_point(vertices, np.array([0.0, 0.0, -0.1])), [0.0, 0.0, -0.1], atol=1e-9)


def test_the_ground_point_is_under_the_footprint_centre_when_the_origin_is_elsewhere() -> None:
    vertices = standing_figure().vertices + np.array([3.0, 1.0, 0.5])       # origin far off to the side
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    expected = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]]
    np.testing.assert_allclose(ground_point(vertices, np.zeros(3)), expected, atol=1e-9)
    np.testing.assert_allclose(ground_point(vertices), expected, atol=1e-9)  # a reconstruction: no origin
    centred = vertices - (lo + hi) / 2                                       # origin in the belly: not the floor
    assert ground_point(centred, np.zeros(3))[2] == pytest.approx(centred[:, 2].min())


def test_the_floor_root_parents_the_old_root_through_a_bone_that_does_not_deform() -> None:
    rig = chain_rig()
    grounded = add_floor_root(rig, np.array([0.0, 0.0, -0.1]))
    ground = grounded.num_joints - 1
    assert grounded.root == ground and grounded.parents[rig.root] == ground
    np.testing.assert_allclose(grounded.joints[ground], [0, 0, -0.1])
    np.testing.assert_array_equal(grounded.joints[:-1], rig.joints)        # old joint indices keep their meaning
    root_bone = grounded.bone_names.index(ROOT_BONE)
    assert grounded.bone_tail_joint[root_bone] == rig.root and not grounded.bone_deforms[root_bone]
    for b, name in enumerate(rig.bone_names):                               # other bones keep names and flags
        assert grounded.bone_deforms[grounded.bone_names.index(name)] == rig.bone_deforms[b]


def test_skinning_never_binds_a_vertex_to_the_floor_bone() -> None:
    figure = standing_figure()
    keypoints, adjacency = curve_joints(curve_skeleton(figure.vertices, figure.faces))
    from backend.skeleton import build_skeleton

    rig = build_skeleton(keypoints, adjacency).rig
    grounded = add_floor_root(rig, ground_point(figure.vertices, np.zeros(3)))
    weights = skin_weights("improved", figure.vertices, figure.faces, grounded).to_dense()
    floor_bone = grounded.bone_names.index(ROOT_BONE)
    assert weights[:, floor_bone].max() == 0.0
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)


def test_bad_ground_and_bad_vertices_are_refused_by_name() -> None:
    with pytest.raises(KeyDiffError, match="ground"):
        add_floor_root(chain_rig(), np.array([0.0, np.nan, 0.0]))
    with pytest.raises(KeyDiffError, match="vertices"):
        ground_point(np.zeros((0, 3)))
    with pytest.raises(KeyDiffError, match="origin"):
        ground_point(standing_figure().vertices, np.array([0.0, 1.0]))


def test_rig_mesh_puts_a_non_deforming_root_on_the_floor_and_the_bundle_validates(tmp_path: Path) -> None:
    standing_figure().export(tmp_path / "figure.ply")
    bundle = rig_mesh(tmp_path / "figure.ply", tmp_path / "bundle", RigMeshOptions(keypoints="geometry"))
    rig = rig_from_document(read_rig_document(bundle))
    root_bone = rig.bone_names.index(ROOT_BONE)
    np.testing.assert_allclose(rig.joints[rig.root], [0.0, 0.0, 0.0], atol=1e-6)   # the file's origin, on the floor
    assert rig.bone_head_joint[root_bone] == rig.root and not rig.bone_deforms[root_bone]
    assert rig.joints[rig.bone_tail_joint[root_bone], 2] > 0.3                        # the old root, in the body
    assert read_bundle_weights(bundle).to_dense()[:, root_bone].max() == 0.0
    asset = load_skinned_gltf(bundle / "rigged.glb")                                  # game engines read this file
    assert ROOT_BONE in asset.rig.bone_names
    if has_gltf_validator():
        assert validate_gltf(bundle / "rigged.glb").num_errors == 0


def test_rig_mesh_leaves_marker_rigs_and_an_explicit_no_as_they_are(tmp_path: Path) -> None:
    standing_figure().export(tmp_path / "figure.ply")
    markers = tmp_path / "markers.json"
    save_markers(markers, [[0, 0, 1.3], [-0.15, 0, 0.1], [0.15, 0, 0.1]], edges=[[0, 1], [0, 2]])
    marked = rig_mesh(tmp_path / "figure.ply", tmp_path / "marked", RigMeshOptions(markers=str(markers)))
    assert rig_from_document(read_rig_document(marked)).num_joints == 3
    options = RigMeshOptions(keypoints="geometry", floor_root=False)
    bare = rig_from_document(read_rig_document(rig_mesh(tmp_path / "figure.ply", tmp_path / "bare", options)))
    assert ROOT_BONE not in bare.bone_names and bare.joints[bare.root, 2] > 0.3
    marked_with_floor = RigMeshOptions(markers=str(markers), floor_root=True)
    grounded = rig_from_document(read_rig_document(rig_mesh(tmp_path / "figure.ply", tmp_path / "g", marked_with_floor)))
    assert grounded.num_joints == 4 and ROOT_BONE in grounded.bone_names


def test_a_limb_ends_one_radius_back_from_its_cap_centre_where_it_would_hinge() -> None:
    figure = standing_figure()
    skeleton = curve_skeleton(figure.vertices, figure.faces)
    at_cap, _ = curve_joints(skeleton, tip_pullback=0.0)
    pulled, _ = curve_joints(skeleton)
    # the legs fork from the body: their feet are limb ends (cap centres at z = 0.08, the leg radius)
    foot_at_cap, foot_pulled = at_cap[:, 2].min(), pulled[:, 2].min()
    assert foot_at_cap == pytest.approx(0.08, abs=0.04)
    assert foot_pulled - foot_at_cap == pytest.approx(0.08, abs=0.04)
    with pytest.raises(KeyDiffError, match="tip_pullback"):
        curve_joints(skeleton, tip_pullback=-1.0)


@pytest.mark.skipif(not shared_rig_files(), reason="../shared/data/rigs is not beside this checkout")
def test_on_artist_game_rigs_the_floor_root_lands_on_the_artists_own_root_joint() -> None:
    """Knight, T-rex and platformer character (Quaternius) carry their root joint on the floor at the origin."""
    for path in [p for p in shared_rig_files() if p.stem in ("single_knight_pack_KnightCharacter",
                                                               "dinosaurs_pack_Trex", "platformer_game_pack_Character")]:
        asset = load_skinned_gltf(path)
        size = float(np.ptp(asset.mesh.vertices, axis=0).max())
        artist_root = asset.skeleton_joints[asset.skeleton_parents == -1][0]
        ours = ground_point(asset.mesh.vertices, np.zeros(3))
        assert np.linalg.norm(ours - artist_root) < 0.04 * size, path.stem     # the body is ~0.5 x size up
