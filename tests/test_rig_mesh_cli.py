"""rig-mesh and the bundle, end to end through the real command: what a user or the add-on gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.export.bundle import read_bundle_weights, read_rig_document, rig_from_document
from backend.export.gltf_reader import load_skinned_gltf
from backend.export.gltf_validate import has_gltf_validator, validate_gltf
from backend.mesh_io import load_mesh
from backend.pipeline.markers import save_markers
from backend.posing import bone_transforms, skin_vertices
from scipy.spatial.transform import Rotation

from conftest import REPO, shared_rig_files


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backend", *args], capture_output=True, text=True, cwd=cwd or REPO, timeout=300
    )


def bent_bar(tmp_path: Path) -> tuple[Path, Path]:
    """A vertical bar (glTF Y-up file) with three markers along it: hip, knee, foot."""
    bar = trimesh.creation.box(extents=(0.2, 2.0, 0.2))
    bar = bar.subdivide().subdivide().subdivide()
    bar.apply_translation((0, 1.0, 0))
    bar.export(tmp_path / "bar.glb")
    markers = tmp_path / "markers.json"
    save_markers(markers, [[0, 0, 2.0], [0, 0, 1.0], [0, 0, 0.0]], edges=[[0, 1], [1, 2]])
    return tmp_path / "bar.glb", markers


def test_rig_mesh_writes_a_complete_bundle_in_the_meshs_own_coordinates(tmp_path: Path) -> None:
    mesh_path, markers = bent_bar(tmp_path)
    done = run_cli("rig-mesh", str(mesh_path), "--markers", str(markers), "-o", str(tmp_path / "bundle"))
    assert done.returncode == 0, done.stderr
    bundle = tmp_path / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["mesh.glb", "preview.png", "rig.json", "rigged.glb", "weights.npz"]
    doc = read_rig_document(bundle)
    rig = rig_from_document(doc)
    # the joints are the markers, in the file's own units and Z-up world
    np.testing.assert_allclose(sorted(rig.joints[:, 2]), [0.0, 1.0, 2.0], atol=1e-9)
    assert rig.num_bones == 2
    weights = read_bundle_weights(bundle)
    mesh = load_mesh(bundle / "mesh.glb")
    assert weights.num_vertices == mesh.num_vertices
    np.testing.assert_allclose(weights.weights.sum(axis=1), 1.0, atol=1e-6)
    # leftover staging folders would be debris in the user's output folder
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_posing_one_bone_moves_only_the_vertices_it_weights(tmp_path: Path) -> None:
    mesh_path, markers = bent_bar(tmp_path)
    assert run_cli("rig-mesh", str(mesh_path), "--markers", str(markers), "-o", str(tmp_path / "b")).returncode == 0
    rig = rig_from_document(read_rig_document(tmp_path / "b"))
    weights = read_bundle_weights(tmp_path / "b")
    vertices = load_mesh(tmp_path / "b" / "mesh.glb").vertices
    lower = int(np.argmin(rig.bone_heads[:, 2]))            # the shin: head at the knee
    rotations = np.tile(np.eye(3), (rig.num_bones, 1, 1))
    rotations[lower] = Rotation.from_euler("x", 60, degrees=True).as_matrix()
    posed = skin_vertices(vertices, weights, bone_transforms(rig, rotations))
    moved = np.linalg.norm(posed - vertices, axis=1) > 1e-6
    weight = weights.to_dense()[:, lower]
    knee = rig.bone_heads[lower]
    off_axis = np.linalg.norm((vertices - knee)[:, 1:], axis=1) > 1e-3   # points on the hinge axis stay put
    assert not moved[weight == 0].any(), "a vertex with no weight on the shin moved"
    assert moved[(weight > 0.05) & off_axis].all(), "a vertex weighted to the shin did not follow it"
    assert moved.sum() > len(vertices) // 4


@pytest.mark.skipif(not has_gltf_validator(), reason="Node.js gltf-validator not installed")
def test_rigged_glb_is_valid_gltf_and_reloads_with_the_same_rig(tmp_path: Path) -> None:
    mesh_path, markers = bent_bar(tmp_path)
    assert run_cli("rig-mesh", str(mesh_path), "--markers", str(markers), "-o", str(tmp_path / "b")).returncode == 0
    report = validate_gltf(tmp_path / "b" / "rigged.glb")
    assert report.num_errors == 0, report.summary()
    asset = load_skinned_gltf(tmp_path / "b" / "rigged.glb")
    rig = rig_from_document(read_rig_document(tmp_path / "b"))
    np.testing.assert_allclose(np.sort(asset.rig.bone_heads, axis=0), np.sort(rig.bone_heads, axis=0), atol=1e-5)


def test_json_mode_speaks_the_protocol(tmp_path: Path) -> None:
    mesh_path, markers = bent_bar(tmp_path)
    done = run_cli("rig-mesh", str(mesh_path), "--markers", str(markers), "-o", str(tmp_path / "b"), "--json")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["type"] == "hello" and lines[0]["protocol"] == 1
    assert {m["type"] for m in lines[1:-1]} == {"progress"}
    assert all(0.0 <= m["fraction"] <= 1.0 for m in lines[1:-1])
    assert lines[-1] == {"type": "result", "bundle": str((tmp_path / "b").absolute())}


@pytest.mark.parametrize(
    "case, code",
    [("missing_mesh", "unreadable_file"), ("nan_markers", "invalid_keypoints"), ("one_marker", "invalid_keypoints"),
     ("not_json_markers", "unreadable_file"), ("missing_checkpoint", "missing_weights"),
     ("foreign_output", "output_not_writable")],
)
def test_bad_input_fails_with_one_line_a_code_and_no_output(tmp_path: Path, case: str, code: str) -> None:
    mesh_path, markers = bent_bar(tmp_path)
    out = tmp_path / "out"
    args = ["rig-mesh", str(mesh_path), "--markers", str(markers), "-o", str(out), "--json"]
    if case == "missing_mesh":
        args[1] = str(tmp_path / "nope.glb")
    elif case == "nan_markers":
        markers.write_text('{"keypoints": [[0, 0, NaN], [0, 0, 1], [0, 0, 2]]}')
    elif case == "one_marker":
        save_markers(markers, [[0, 0, 1]])
    elif case == "not_json_markers":
        markers.write_text("hips at the middle, please")
    elif case == "missing_checkpoint":
        args = args[:2] + ["--keypoints", "network", "--checkpoint", str(tmp_path / "never-trained.pt")] + args[4:]
    elif case == "foreign_output":
        out.mkdir()
        (out / "thesis.txt").write_text("my thesis")
    done = run_cli(*args)
    assert done.returncode == 2
    error_lines = done.stderr.strip().splitlines()
    assert len(error_lines) == 1 and f"[{code}]" in error_lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["code"] == code
    if case == "foreign_output":
        assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
    else:
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_second_run_replaces_an_earlier_bundle(tmp_path: Path) -> None:
    mesh_path, markers = bent_bar(tmp_path)
    out = tmp_path / "b"
    assert run_cli("rig-mesh", str(mesh_path), "--markers", str(markers), "-o", str(out)).returncode == 0
    save_markers(markers, [[0, 0, 2.0], [0, 0, 0.0]])
    assert run_cli("rig-mesh", str(mesh_path), "--markers", str(markers), "-o", str(out)).returncode == 0
    assert rig_from_document(read_rig_document(out)).num_bones == 1


@pytest.mark.slow
@pytest.mark.parametrize("path", shared_rig_files(), ids=lambda p: p.name)
def test_rig_mesh_on_real_characters_with_their_own_joints_as_markers(tmp_path: Path, path: Path) -> None:
    asset = load_skinned_gltf(path)
    edges = [[i, p] for i, p in enumerate(asset.skeleton_parents) if p >= 0]
    save_markers(tmp_path / "m.json", asset.skeleton_joints, edges=edges)
    done = run_cli("rig-mesh", str(path), "--markers", str(tmp_path / "m.json"), "-o", str(tmp_path / "b"))
    if len(np.unique(asset.skeleton_joints.round(6), axis=0)) < 2:
        # SimpleSkin's two joints sit on the same spot in its bind pose: no bone can be made, say so cleanly
        assert done.returncode == 2 and "[invalid_keypoints]" in done.stderr and not (tmp_path / "b").exists()
        return
    assert done.returncode == 0, done.stderr
    rig = rig_from_document(read_rig_document(tmp_path / "b"))
    weights = read_bundle_weights(tmp_path / "b")
    assert rig.num_bones >= min(2, len(asset.skeleton_joints) - 1)
    assert (weights.weights.sum(axis=1) > 0.999).all()
    if has_gltf_validator():
        report = validate_gltf(tmp_path / "b" / "rigged.glb")
        assert report.num_errors == 0, report.summary()


@pytest.mark.parametrize("keypoints", ["geometry", "network", "markers"])
def test_the_readme_demo_rigs_the_built_in_example(tmp_path: Path, keypoints: str) -> None:
    done = run_cli("demo", "-o", str(tmp_path / "demo"), "--keypoints", keypoints)
    assert done.returncode == 0, done.stderr
    rig = rig_from_document(read_rig_document(tmp_path / "demo"))
    weights = read_bundle_weights(tmp_path / "demo")
    assert rig.num_bones >= 8                     # a body, not a stick: arms, legs, spine
    np.testing.assert_allclose(weights.weights.sum(axis=1), 1.0, atol=1e-5)
    assert (tmp_path / "demo" / "preview.png").stat().st_size > 10_000


def test_the_floor_root_is_on_by_default_and_off_with_its_flag(tmp_path: Path) -> None:
    example = REPO / "examples" / "humanoid" / "mesh.glb"
    for flag, expected in ((None, True), ("--no-floor-root", False)):
        out = tmp_path / str(expected)
        done = run_cli("rig-mesh", str(example), "-o", str(out), *([flag] if flag else []))
        assert done.returncode == 0, done.stderr
        doc = read_rig_document(out)
        rig = rig_from_document(doc)
        assert doc["settings"]["floor_root"] is expected and doc["settings"]["keypoints"] == "geometry"
        floor = np.flatnonzero(np.asarray(rig.names) == "ground")
        assert len(floor) == int(expected)
        if expected:      # on the floor: the lowest joint, at the mesh's lowest point
            assert rig.joints[floor[0], 2] == pytest.approx(load_mesh(example).vertices[:, 2].min(), abs=1e-3)


def test_a_symmetric_mesh_gets_mirrored_sided_bones_unless_the_flag_says_no(tmp_path: Path) -> None:
    example = REPO / "examples" / "humanoid" / "mesh.glb"
    for flag, expected in ((None, True), ("--no-symmetry", False)):
        out = tmp_path / str(expected)
        done = run_cli("rig-mesh", str(example), "-o", str(out), *([flag] if flag else []))
        assert done.returncode == 0, done.stderr
        doc = read_rig_document(out)
        rig = rig_from_document(doc)
        sided = [name for name in rig.bone_names if name.endswith((".L", ".R"))]
        assert doc["settings"]["symmetry"] is expected
        if not expected:
            assert sided == [] and doc["settings"]["mirror"] is None
            continue
        assert doc["settings"]["mirror"]["plane"] == "x" and len(sided) >= 8     # two arms and two legs at least
        index = {name: i for i, name in enumerate(rig.names)}
        for name in (n for n in rig.names if n.endswith(".L")):
            left, right = rig.joints[index[name]], rig.joints[index[name[:-2] + ".R"]]
            np.testing.assert_allclose(right, left * [-1, 1, 1], atol=1e-6)      # mirror images across X = 0
