"""Reading users' mesh files: formats, joined parts, Z-up, colours, and a clear error for each bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.errors import KeyDiffError
from backend.mesh_io import load_mesh

from conftest import shared_rig_files


def test_gltf_is_turned_z_up_like_blenders_importer(tmp_path: Path) -> None:
    # a box 1 wide (x), 3 tall (glTF y = up), 2 deep (glTF z = towards the viewer)
    box = trimesh.creation.box(extents=(1, 3, 2))
    box.apply_translation((0, 1.5, 0))
    box.export(tmp_path / "box.glb")
    mesh = load_mesh(tmp_path / "box.glb")
    lo, hi = mesh.bounding_box()
    np.testing.assert_allclose(hi - lo, [1, 2, 3], atol=1e-6)
    assert lo[2] == pytest.approx(0.0, abs=1e-6)


def test_stl_and_ply_keep_their_axes_and_parts_are_joined(tmp_path: Path) -> None:
    scene = trimesh.Scene([trimesh.creation.box(extents=(1, 1, 1)),
                           trimesh.creation.icosphere(radius=0.5).apply_translation((0, 0, 3))])
    scene.export(tmp_path / "two.ply")
    joined = trimesh.util.concatenate(scene.dump(concatenate=False))
    joined.export(tmp_path / "two.stl")
    for name in ("two.ply", "two.stl"):
        mesh = load_mesh(tmp_path / name)
        assert mesh.vertices[:, 2].max() == pytest.approx(3.5, abs=1e-5)


def test_vertex_colours_survive_loading(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    sphere.visual.vertex_colors = np.tile([255, 0, 0, 255], (len(sphere.vertices), 1)).astype(np.uint8)
    sphere.export(tmp_path / "red.glb")
    mesh = load_mesh(tmp_path / "red.glb")
    assert mesh.colors is not None
    np.testing.assert_allclose(mesh.colors.mean(axis=0), [1, 0, 0, 1], atol=1e-6)


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "name, content, code, words",
    [
        ("empty.glb", b"", "unreadable_file", "empty"),
        ("notes.glb", b"these are my notes, not a mesh", "unreadable_file", "not a readable"),
        ("points.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                       b"property float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n", "invalid_mesh", "no triangle faces"),
        ("mesh.fbx", b"Kaydara FBX Binary", "unreadable_file", "unsupported mesh format"),
    ],
)
def test_bad_mesh_files_fail_with_a_code_and_a_reason(tmp_path, name, content, code, words) -> None:
    with pytest.raises(KeyDiffError, match=words) as info:
        load_mesh(_write(tmp_path, name, content))
    assert info.value.code == code


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(KeyDiffError, match="does not exist") as info:
        load_mesh(tmp_path / "nowhere.obj")
    assert info.value.code == "unreadable_file"


def test_nan_vertices_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "nan.obj", b"v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    with pytest.raises(KeyDiffError, match="NaN") as info:
        load_mesh(path)
    assert info.value.code == "invalid_mesh"


def test_too_many_faces_asks_for_decimation(tmp_path: Path) -> None:
    trimesh.creation.icosphere(subdivisions=3).export(tmp_path / "ball.ply")
    with pytest.raises(KeyDiffError, match="decimate") as info:
        load_mesh(tmp_path / "ball.ply", max_faces=100)
    assert info.value.code == "invalid_mesh"


@pytest.mark.parametrize("path", shared_rig_files(), ids=lambda p: p.name)
def test_every_real_character_loads_upright(path: Path) -> None:
    mesh = load_mesh(path)
    lo, hi = mesh.bounding_box()
    assert mesh.num_vertices > 0 and len(mesh.faces) > 0
    # characters stand on the ground: nearly nothing below z = 0 relative to their height
    assert lo[2] > -0.05 * (hi[2] - lo[2]) or path.name == "SimpleSkin.gltf"
