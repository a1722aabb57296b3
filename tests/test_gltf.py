"""Skinned glTF: our writer passes the Khronos validator, the reader reproduces each file's own skinning, and a
write → read round trip gives back the same mesh, rig and weights.

Real rigs come from ../shared/data/rigs (skipped when absent); the file's own skinning is evaluated by the
independent, literal evaluator in tests/gltf_reference.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backend.errors import KeyDiffError
from backend.export.axes import GLTF_TO_WORLD
from backend.export.gltf_reader import load_skinned_gltf
from backend.export.gltf_validate import has_gltf_validator, validate_gltf
from backend.export.gltf_writer import write_rigged_gltf
from backend.mesh import Mesh
from backend.posing import bone_transforms, skin_vertices
from backend.rig import Rig, SkinWeights
from gltf_reference import ReferenceGltf, with_extra_rotation

RIGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rigs"
RIG_FILES = sorted(p.name for p in RIGS.glob("*.gl*")) if RIGS.is_dir() else []
TO_WORLD = GLTF_TO_WORLD[:3, :3]

needs_validator = pytest.mark.skipif(not has_gltf_validator(), reason="node or npm gltf-validator not installed")


def _rig_path(name: str) -> Path:
    if not RIGS.is_dir():
        pytest.skip(f"real rig data not found at {RIGS}")
    return RIGS / name


def _closest_rotation(matrix: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(matrix)
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


def _pose_both_ways(path: Path, asset, bone: int, degrees: float, axis=(0.3, 0.5, 0.8)):
    """(our LBS result, the file's own skinning) after rotating the bone's glTF node by `degrees`."""
    ref = ReferenceGltf(path)
    local = ref.bind_locals() if asset.pose == "bind" else {i: ref.local_matrix(i) for i in range(len(ref.nodes))}
    node = int(asset.bone_nodes[bone])
    delta = Rotation.from_rotvec(np.radians(degrees) * np.asarray(axis) / np.linalg.norm(axis)).as_matrix()
    posed_local = dict(local)
    posed_local[node] = with_extra_rotation(local[node], delta)
    theirs = ref.skinned_positions(posed_local) @ TO_WORLD.T

    # The same motion for our rig: world rotation G_n · R · G_n⁻¹ about the bone head (uniform scale only).
    world = ref.world_matrices(local)[node][:3, :3]
    scale = np.linalg.norm(world, axis=0)
    assert np.ptp(scale) <= 1e-4 * scale.max(), f"node {node} has non-uniform scale {scale}"
    rotation = _closest_rotation(world @ delta @ np.linalg.inv(world))
    rotations = np.tile(np.eye(3), (asset.rig.num_bones, 1, 1))
    rotations[bone] = TO_WORLD @ rotation @ TO_WORLD.T
    ours = skin_vertices(asset.mesh.vertices, asset.weights, bone_transforms(asset.rig, rotations))
    return ours, theirs


def _bones_to_pose(asset) -> list[int]:
    """The deforming bone with most weighted vertices, and the one whose joint has most joint children."""
    counts = (asset.weights.to_dense() > 0).sum(axis=0)
    busiest = int(np.argmax(np.where(asset.rig.bone_deforms, counts, -1)))
    kids = np.bincount(asset.skeleton_parents[asset.skeleton_parents >= 0], minlength=len(asset.skeleton_parents))
    branchy = int(asset.skeleton_bones[int(np.argmax(kids))])
    return sorted({busiest, branchy})


# --- real rigs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", RIG_FILES or ["<no data>"])
def test_loaded_rig_poses_like_the_files_own_skin(name):
    path = _rig_path(name)
    asset = load_skinned_gltf(path)                     # bind pose
    ref = ReferenceGltf(path)
    at_bind = ref.skinned_positions(ref.bind_locals()) @ TO_WORLD.T
    np.testing.assert_allclose(asset.mesh.vertices, at_bind, atol=1e-6 * asset.size)
    for bone in _bones_to_pose(asset):
        ours, theirs = _pose_both_ways(path, asset, bone, 45.0)
        error = np.abs(ours - theirs).max()
        assert error < 1e-4 * asset.size, f"{name}: bone {asset.rig.bone_names[bone]} off by {error / asset.size:.2e} of size"
        assert np.abs(theirs - asset.mesh.vertices).max() > 1e-3 * asset.size, "the pose must move something"


@pytest.mark.parametrize("name", RIG_FILES or ["<no data>"])
def test_rest_pose_load_matches_a_viewer_at_rest(name):
    path = _rig_path(name)
    asset = load_skinned_gltf(path, pose="rest")
    ref = ReferenceGltf(path)
    at_rest = ref.skinned_positions({i: ref.local_matrix(i) for i in range(len(ref.nodes))}) @ TO_WORLD.T
    np.testing.assert_allclose(asset.mesh.vertices, at_rest, atol=1e-6 * asset.size)
    node_world = ref.world_matrices({i: ref.local_matrix(i) for i in range(len(ref.nodes))})
    nodes_at = np.array([node_world[n][:3, 3] for n in asset.skeleton_nodes]) @ TO_WORLD.T
    np.testing.assert_allclose(asset.skeleton_joints, nodes_at, atol=1e-9 * asset.size)
    if asset.bind_rest_gap < 1e-6:                      # rest == bind: LBS of the rig must match too
        ours, theirs = _pose_both_ways(path, asset, _bones_to_pose(asset)[0], 40.0)
        assert np.abs(ours - theirs).max() < 1e-4 * asset.size


@needs_validator
@pytest.mark.parametrize("name", RIG_FILES or ["<no data>"])
def test_real_rig_exports_valid_gltf_and_round_trips(name, tmp_path):
    asset = load_skinned_gltf(_rig_path(name))
    out = tmp_path / "rigged.glb"
    write_rigged_gltf(out, asset.mesh, asset.rig, asset.weights)
    report = validate_gltf(out)
    assert report.num_errors == 0 and report.num_warnings == 0, report.summary()
    assert report.info["maxInfluences"] <= 4

    again = load_skinned_gltf(out)
    assert again.mesh.num_vertices == asset.mesh.num_vertices
    np.testing.assert_array_equal(again.mesh.faces, asset.mesh.faces)
    np.testing.assert_allclose(again.mesh.vertices, asset.mesh.vertices, atol=1e-6 * asset.size)
    assert again.rig.bone_names == asset.rig.bone_names and again.rig.names == asset.rig.names
    np.testing.assert_array_equal(again.rig.parents, asset.rig.parents)
    np.testing.assert_array_equal(again.rig.bone_deforms, asset.rig.bone_deforms)
    np.testing.assert_allclose(again.rig.joints, asset.rig.joints, atol=1e-6 * asset.size)
    np.testing.assert_allclose(again.weights.to_dense(), asset.weights.to_dense(), atol=2e-7)

    # Engines skin our file by the spec: pose it with the reference and compare with our LBS of the source rig.
    for bone in _bones_to_pose(asset):
        ours, theirs = _pose_both_ways(out, again, bone, 50.0)
        assert np.abs(ours - theirs).max() < 1e-4 * asset.size


@pytest.mark.parametrize("name", RIG_FILES or ["<no data>"])
def test_every_gltf_joint_becomes_a_named_deforming_bone_at_its_node(name):
    asset = load_skinned_gltf(_rig_path(name))
    rig = asset.rig
    bones = asset.skeleton_bones
    assert len(set(bones.tolist())) == len(bones)
    assert rig.bone_deforms[bones].all()
    assert [rig.bone_names[b] for b in bones] == list(asset.skeleton_names)
    np.testing.assert_allclose(rig.bone_heads[bones], asset.skeleton_joints, atol=1e-5 * asset.size)
    assert (~rig.bone_deforms).sum() == rig.num_bones - len(bones)          # the rest are link bones
    assert not (asset.weights.to_dense()[:, ~rig.bone_deforms] > 0).any()
    np.testing.assert_allclose(asset.weights.weights.sum(axis=1), 1.0, atol=1e-6)


# --- our own rigs --------------------------------------------------------------------------------------
def _chain_asset(num_vertices_per_ring: int = 12, rings: int = 9):
    """A bent tube along a 4-bone chain that forks at the third joint, weighted by distance to the joints."""
    joints = np.array([[0, 0, 0], [0, 0, 0.4], [0.1, 0, 0.8], [0.1, 0.0, 1.2], [0.4, 0.0, 1.0]], float)
    rig = Rig(joints, np.array([-1, 0, 1, 2, 2]), ("hips", "spine", "chest", "head", "arm"))
    t = np.linspace(0, 1.2, rings)
    angle = np.linspace(0, 2 * np.pi, num_vertices_per_ring, endpoint=False)
    ring = np.stack([0.08 * np.cos(angle), 0.08 * np.sin(angle)], axis=1)
    vertices = np.concatenate([np.c_[ring + [0.1 * (z > 0.6), 0], np.full(len(ring), z)] for z in t])
    faces = []
    n = num_vertices_per_ring
    for r in range(rings - 1):
        for k in range(n):
            a, b, c, d = r * n + k, r * n + (k + 1) % n, (r + 1) * n + k, (r + 1) * n + (k + 1) % n
            faces += [[a, b, d], [a, d, c]]
    mids = (rig.bone_heads + rig.bone_tails) / 2
    dense = np.exp(-np.linalg.norm(vertices[:, None] - mids[None], axis=2) ** 2 / 0.02)
    return Mesh(vertices, np.array(faces)), rig, SkinWeights.from_dense(dense, k=4)


@needs_validator
@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_hand_made_chain_round_trips_exactly(tmp_path, suffix):
    mesh, rig, weights = _chain_asset()
    out = tmp_path / f"chain{suffix}"
    write_rigged_gltf(out, mesh, rig, weights)
    report = validate_gltf(out)
    assert report.num_errors == 0 and report.num_warnings == 0, report.summary()
    asset = load_skinned_gltf(out)
    np.testing.assert_allclose(asset.mesh.vertices, mesh.vertices, atol=1e-6)
    assert asset.rig.names == rig.names and asset.rig.bone_names == rig.bone_names
    np.testing.assert_array_equal(asset.rig.parents, rig.parents)
    np.testing.assert_allclose(asset.rig.joints, rig.joints, atol=1e-6)
    np.testing.assert_allclose(asset.weights.to_dense(), weights.to_dense(), atol=2e-7)
    ours, theirs = _pose_both_ways(out, asset, 1, 60.0)
    assert np.abs(ours - theirs).max() < 1e-5


def test_gltf_with_external_buffer_is_written_next_to_it(tmp_path):
    mesh, rig, weights = _chain_asset()
    write_rigged_gltf(tmp_path / "chain.gltf", mesh, rig, weights, external_buffer=True)
    assert (tmp_path / "chain.bin").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.bin", "chain.gltf"]   # no temp files left
    np.testing.assert_allclose(load_skinned_gltf(tmp_path / "chain.gltf").mesh.vertices, mesh.vertices, atol=1e-6)


@needs_validator
def test_vertex_colours_round_trip(tmp_path):
    mesh, rig, weights = _chain_asset()
    rng = np.random.default_rng(0)
    colors = np.c_[rng.uniform(0, 1, (mesh.num_vertices, 3)), np.ones(mesh.num_vertices)].astype(np.float32)
    mesh = Mesh(mesh.vertices, mesh.faces, colors=colors)
    write_rigged_gltf(tmp_path / "c.glb", mesh, rig, weights)
    assert validate_gltf(tmp_path / "c.glb").num_errors == 0
    back = load_skinned_gltf(tmp_path / "c.glb").mesh
    np.testing.assert_allclose(back.colors, colors, atol=1e-7)
    assert back.texture is None


@needs_validator
def test_textured_mesh_round_trips_uvs_and_image(tmp_path):
    mesh, rig, weights = _chain_asset()
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)
    uvs = rng.uniform(0, 1, (mesh.num_vertices, 2)).astype(np.float32)
    mesh = Mesh(mesh.vertices, mesh.faces, uvs=uvs, texture=texture)
    write_rigged_gltf(tmp_path / "t.glb", mesh, rig, weights)
    report = validate_gltf(tmp_path / "t.glb")
    assert report.num_errors == 0, report.summary()
    back = load_skinned_gltf(tmp_path / "t.glb").mesh
    np.testing.assert_array_equal(back.texture, texture)
    np.testing.assert_allclose(back.uvs, uvs, atol=0)
    assert back.colors is None


@needs_validator
def test_more_than_four_influences_are_cut_to_the_heaviest_four(tmp_path):
    mesh, rig, _ = _chain_asset()
    dense = np.random.default_rng(2).uniform(0.1, 1.0, (mesh.num_vertices, rig.num_bones))
    weights = SkinWeights.from_dense(dense, k=rig.num_bones)
    write_rigged_gltf(tmp_path / "w.glb", mesh, rig, weights)
    report = validate_gltf(tmp_path / "w.glb")
    assert report.num_errors == 0 and report.info["maxInfluences"] == 4, report.summary()
    back = load_skinned_gltf(tmp_path / "w.glb").weights
    np.testing.assert_array_equal(back.indices[:, :4], weights.indices[:, :4])
    expected = weights.weights[:, :4] / weights.weights[:, :4].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(back.weights, expected, atol=2e-7)


@needs_validator
def test_rigs_with_more_than_256_bones_use_16_bit_joints(tmp_path):
    num_bones = 300
    joints = np.c_[np.zeros((num_bones + 1, 2)), np.linspace(0, 3, num_bones + 1)]
    rig = Rig(joints, np.arange(-1, num_bones), tuple(f"j{k}" for k in range(num_bones + 1)))
    mesh, _, _ = _chain_asset(num_vertices_per_ring=4, rings=num_bones)
    mesh = Mesh(mesh.vertices * [1, 1, 2.5], mesh.faces)
    mids = (rig.bone_heads + rig.bone_tails) / 2
    weights = SkinWeights.from_dense(np.exp(-np.abs(mesh.vertices[:, None, 2] - mids[None, :, 2]) / 0.01), k=4)
    write_rigged_gltf(tmp_path / "long.glb", mesh, rig, weights)
    report = validate_gltf(tmp_path / "long.glb")
    assert report.num_errors == 0 and report.num_warnings == 0, report.summary()
    back = load_skinned_gltf(tmp_path / "long.glb")
    assert back.weights.indices.max() > 255
    np.testing.assert_allclose(back.weights.to_dense(), weights.to_dense(), atol=2e-7)


# --- bad input -----------------------------------------------------------------------------------------
def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(KeyDiffError) as err:
        load_skinned_gltf(tmp_path / "nope.glb")
    assert err.value.code == "unreadable_file"


def test_text_file_named_glb_is_unreadable(tmp_path):
    bad = tmp_path / "fake.glb"
    bad.write_text("this is not a model\n")
    with pytest.raises(KeyDiffError) as err:
        load_skinned_gltf(bad)
    assert err.value.code == "unreadable_file" and "fake.glb" in err.value.message


def test_truncated_glb_is_unreadable(tmp_path):
    mesh, rig, weights = _chain_asset()
    write_rigged_gltf(tmp_path / "ok.glb", mesh, rig, weights)
    data = (tmp_path / "ok.glb").read_bytes()
    (tmp_path / "cut.glb").write_bytes(data[: len(data) // 2])
    with pytest.raises(KeyDiffError) as err:
        load_skinned_gltf(tmp_path / "cut.glb")
    assert err.value.code == "unreadable_file"


def test_gltf_without_a_skin_is_not_a_rig(tmp_path):
    import trimesh

    trimesh.creation.box().export(tmp_path / "box.glb")
    with pytest.raises(KeyDiffError) as err:
        load_skinned_gltf(tmp_path / "box.glb")
    assert err.value.code == "invalid_rig" and "no skin" in err.value.message


def test_writer_rejects_mesh_without_faces(tmp_path):
    mesh, rig, weights = _chain_asset()
    with pytest.raises(KeyDiffError) as err:
        write_rigged_gltf(tmp_path / "x.glb", Mesh(mesh.vertices, np.zeros((0, 3), np.int64)), rig, weights)
    assert err.value.code == "invalid_mesh"
    assert not any(tmp_path.iterdir())


def test_writer_rejects_weights_for_another_mesh(tmp_path):
    mesh, rig, weights = _chain_asset()
    short = SkinWeights(weights.indices[:-3], weights.weights[:-3], weights.num_bones)
    with pytest.raises(KeyDiffError) as err:
        write_rigged_gltf(tmp_path / "x.glb", mesh, rig, short)
    assert err.value.code == "invalid_argument" and str(mesh.num_vertices) in err.value.message


def test_writer_rejects_unweighted_vertices_and_bad_suffix(tmp_path):
    mesh, rig, weights = _chain_asset()
    zero = weights.weights.copy()
    zero[5] = 0
    with pytest.raises(KeyDiffError) as err:
        write_rigged_gltf(tmp_path / "x.glb", mesh, rig, SkinWeights(weights.indices, zero, weights.num_bones))
    assert err.value.code == "invalid_argument" and "1 vertices" in err.value.message
    with pytest.raises(KeyDiffError) as err:
        write_rigged_gltf(tmp_path / "x.fbx", mesh, rig, weights)
    assert err.value.code == "invalid_argument"


def test_writer_reports_a_missing_output_folder(tmp_path):
    mesh, rig, weights = _chain_asset()
    with pytest.raises(KeyDiffError) as err:
        write_rigged_gltf(tmp_path / "missing" / "x.glb", mesh, rig, weights)
    assert err.value.code == "output_not_writable"


def test_validator_is_reported_missing_when_node_modules_are_absent(tmp_path, monkeypatch):
    mesh, rig, weights = _chain_asset()
    write_rigged_gltf(tmp_path / "x.glb", mesh, rig, weights)
    monkeypatch.setenv("PATH", str(tmp_path))            # no node on PATH
    with pytest.raises(KeyDiffError) as err:
        validate_gltf(tmp_path / "x.glb")
    assert err.value.code == "missing_dependency"


@pytest.mark.parametrize("name", ["animals_pack_Horse.glb", "mesh2motion_BirdBase.glb"])
def test_loaded_normals_agree_with_the_loaded_surface(name):
    path = _rig_path(name)
    if not path.is_file():
        pytest.skip(f"{name} not in the data folder")
    for pose in ("bind", "rest"):
        mesh = load_skinned_gltf(path, pose=pose).mesh
        from_faces = Mesh(mesh.vertices, mesh.faces).with_normals().normals
        np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-5)
        agree = np.einsum("vi,vi->v", mesh.normals, from_faces) > 0.5
        assert agree.mean() > 0.9, f"{pose}: only {agree.mean():.0%} of file normals agree with the surface"


def test_material_colours_and_base_colour_texture_are_loaded():
    horse, fox = _rig_path("animals_pack_Horse.glb"), _rig_path("Fox.glb")
    if not (horse.is_file() and fox.is_file()):
        pytest.skip("Horse/Fox not in the data folder")
    import pygltflib

    factors = {tuple(np.round(m.pbrMetallicRoughness.baseColorFactor, 5)) for m in pygltflib.GLTF2().load(str(horse)).materials}
    colors = load_skinned_gltf(horse).mesh.colors
    loaded = {tuple(c) for c in np.round(colors.astype(np.float64), 5)}
    assert len(loaded) >= 2 and loaded <= factors                  # one flat colour per material
    mesh = load_skinned_gltf(fox).mesh
    assert mesh.texture.shape == (1024, 1024, 3) and mesh.texture.dtype == np.uint8
    assert mesh.uvs.shape == (mesh.num_vertices, 2) and mesh.colors is None
