"""The add-on's file-level pieces, no Blender needed: manifest, bundle/GLB reader, exchange files, backend probe."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import build_extension  # noqa: E402
from backend.mesh_io import load_mesh  # noqa: E402
from backend.pipeline.markers import load_markers, save_markers  # noqa: E402
from backend.pipeline.rig_mesh import RigMeshOptions, rig_mesh  # noqa: E402
from keydiff3d_addon.backend_command import BackendSettings, probe_backend, probe_summary, rig_mesh_argv  # noqa: E402
from keydiff3d_addon.bundle import BundleError, read_bundle  # noqa: E402
from keydiff3d_addon.exchange_files import MarkerFileError, read_marker_file, write_ply  # noqa: E402


# --- manifest and packaging -----------------------------------------------------------------------------------
def test_manifest_has_every_documented_field_with_a_valid_value() -> None:
    assert build_extension.manifest_problems() == []


def test_manifest_check_names_each_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "keydiff3d_addon" / "blender_manifest.toml"
    bad.parent.mkdir()
    bad.write_text('schema_version = "1.0.0"\nid = "keydiff3d_addon"\nversion = "1.0"\nname = "x"\n'
                   'tagline = "Ends with a period."\nmaintainer = "m"\ntype = "add-on"\n'
                   'blender_version_min = "4.2.0"\nlicense = ["GPL"]\n[permissions]\nnetwork = "Downloads."\n')
    problems = " | ".join(build_extension.manifest_problems(bad))
    for field in ("version", "tagline", "license", "network"):
        assert field in problems


def test_blenders_own_validator_accepts_the_manifest_when_the_wheel_ships_it() -> None:
    tool = build_extension.blender_ext_tool()
    if tool is None:
        pytest.skip("the bpy wheel (with bl_pkg/cli/blender_ext.py) is not installed")
    done = subprocess.run([sys.executable, str(tool), "validate", str(REPO / "keydiff3d_addon")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Success" in done.stdout, done.stdout + done.stderr


def test_fallback_zip_holds_the_package_files_at_its_root_without_caches(tmp_path: Path) -> None:
    zip_path = build_extension.build_with_zipfile(tmp_path)
    import zipfile

    names = set(zipfile.ZipFile(zip_path).namelist())
    assert {"__init__.py", "blender_manifest.toml", "protocol_reader.py", "scene_build.py"} <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert [p.name for p in tmp_path.iterdir()] == [zip_path.name]


# --- bundle reader (numpy + struct, as in Blender) --------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    body = trimesh.creation.capsule(height=1.5, radius=0.2, count=(16, 16))
    body.visual.vertex_colors = np.column_stack([
        np.linspace(0, 255, len(body.vertices)), np.full(len(body.vertices), 128), np.zeros(len(body.vertices)),
        np.full(len(body.vertices), 255)]).astype(np.uint8)
    body.export(folder / "body.ply")
    save_markers(folder / "markers.json", [[0, 0, -0.9], [0, 0, 0], [0, 0, 0.9]], edges=[[0, 1], [1, 2]])
    return rig_mesh(folder / "body.ply", folder / "out", RigMeshOptions(markers=str(folder / "markers.json")))


def test_bundle_mesh_is_read_in_the_backends_vertex_order_and_axes(bundle: Path) -> None:
    read = read_bundle(bundle)
    reference = load_mesh(bundle / "mesh.glb")
    np.testing.assert_allclose(read.mesh.positions, reference.vertices, atol=1e-6)
    np.testing.assert_array_equal(read.mesh.triangles, reference.faces)
    np.testing.assert_allclose(read.mesh.colors, reference.colors, atol=1 / 255)
    assert read.num_vertices == read.mesh.num_vertices == len(reference.vertices)


def test_bundle_bones_and_weights_are_the_files_own(bundle: Path) -> None:
    read = read_bundle(bundle)
    document = json.loads((bundle / "rig.json").read_text())
    weights = np.load(bundle / "weights.npz")
    assert read.bones.names == tuple(b["name"] for b in document["bones"])
    np.testing.assert_array_equal(read.bones.heads, [b["head"] for b in document["bones"]])
    np.testing.assert_array_equal(read.weight_values, weights["weights"])
    np.testing.assert_array_equal(read.weight_indices, weights["indices"])


@pytest.mark.parametrize("damage, message", [
    (lambda b: (b / "rig.json").unlink(), "not a KeyDiff3D bundle"),
    (lambda b: (b / "rig.json").write_text("{"), "not readable JSON"),
    (lambda b: _edit_rig(b, version=99), "bundle version 99"),
    (lambda b: _edit_rig(b, bones=[]), "'bones' must be a non-empty list"),
    (lambda b: _edit_bone(b, 0, parent=0), "parents must lie in"),
    (lambda b: _edit_bone(b, 0, head=[0, "x", 0]), "every bone needs name, head"),
    (lambda b: _edit_bone(b, 0, head=[0, float("nan"), 0]), "heads/tails must be finite"),
    (lambda b: (b / "weights.npz").write_bytes(b"junk"), "not a readable weights file"),
    (lambda b: (b / "mesh.glb").write_bytes(b"glTF" + b"\0" * 30), "mesh.glb"),
    (lambda b: (b / "mesh.glb").unlink(), "cannot read"),
])
def test_a_damaged_bundle_fails_with_a_message_naming_the_problem(bundle: Path, tmp_path: Path, damage, message) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    damage(copy)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_bundle(copy)


def test_weights_for_another_mesh_are_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = dict(np.load(copy / "weights.npz"))
    np.savez(copy / "weights.npz", **{k: (v[:-3] if k != "bone_names" else v) for k, v in data.items()})
    with pytest.raises(BundleError, match="inconsistent"):
        read_bundle(copy)


def _edit_rig(folder: Path, **changes) -> None:
    document = json.loads((folder / "rig.json").read_text())
    document.update(changes)
    (folder / "rig.json").write_text(json.dumps(document))


def _edit_bone(folder: Path, index: int, **changes) -> None:
    document = json.loads((folder / "rig.json").read_text())
    document["bones"][index].update(changes)
    (folder / "rig.json").write_text(json.dumps(document))


# --- files handed to the backend ----------------------------------------------------------------------------------
def test_exported_ply_is_read_by_the_backend_with_the_same_vertex_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vertices = rng.normal(size=(500, 3)).astype(np.float32)
    triangles = rng.integers(0, 500, size=(800, 3)).astype(np.int32)
    write_ply(tmp_path / "m.ply", vertices, triangles)
    mesh = load_mesh(tmp_path / "m.ply")
    np.testing.assert_array_equal(mesh.vertices, vertices.astype(np.float64))
    np.testing.assert_array_equal(mesh.faces, triangles)


def test_marker_files_written_for_the_backend_are_accepted_by_it(tmp_path: Path) -> None:
    save_markers(tmp_path / "in.json", [[0, 0, 0], [0, 0, 1]], names=["a", "b"], edges=[[0, 1]])
    document = read_marker_file(tmp_path / "in.json")
    from keydiff3d_addon.exchange_files import write_marker_file

    write_marker_file(tmp_path / "out.json", document["keypoints"] + 1, document["names"], document["edges"])
    markers = load_markers(tmp_path / "out.json")
    np.testing.assert_array_equal(markers.keypoints, [[1, 1, 1], [1, 1, 2]])
    assert markers.names == ("a", "b") and markers.adjacency[0, 1] == 1
    (tmp_path / "bad.json").write_text('{"keypoints": [[0, 0, 0]]}')
    with pytest.raises(MarkerFileError, match="at least 2"):
        read_marker_file(tmp_path / "bad.json")


def test_rig_mesh_command_lines_are_ones_the_backend_cli_accepts() -> None:
    settings = BackendSettings(python=sys.executable, checkpoint="k.pt", device="cpu")
    argvs = [rig_mesh_argv(settings, Path("m.ply"), Path("out"), Path("k.json")),
             rig_mesh_argv(settings, Path("m.ply"), Path("out"), None),
             rig_mesh_argv(settings, Path("m.ply"), Path("out"), None, "network"),
             rig_mesh_argv(settings, Path("m.ply"), Path("out"), None, "geometry", symmetry=False)]
    assert "--markers" in argvs[0] and "--keypoints" not in argvs[0]
    assert "--no-symmetry" in argvs[3] and not any("--no-symmetry" in argv for argv in argvs[:3])
    assert argvs[1][-2:] == ["--keypoints", "geometry"] and "--checkpoint" not in argvs[1]
    assert argvs[2][argvs[2].index("--keypoints") + 1] == "network" and "--checkpoint" in argvs[2]
    done = subprocess.run(argvs[0][:4] + ["--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0
    for flag in {flag for argv in argvs for flag in argv[4:] if flag.startswith("-")}:
        assert flag in done.stdout, f"the backend's rig-mesh has no {flag}"


# --- Check backend ------------------------------------------------------------------------------------------------
@pytest.mark.slow   # two runs of the backend's Python importing torch and diffusers: ~10 s each on 2 cores
def test_check_backend_reports_version_device_weights_and_checkpoint(tmp_path: Path) -> None:
    weights = tmp_path / "sv3d"
    for sub, name in (("unet", "diffusion_pytorch_model.safetensors"), ("vae", "diffusion_pytorch_model.safetensors"),
                      ("image_encoder", "model.safetensors")):
        (weights / sub).mkdir(parents=True)
        (weights / sub / "config.json").write_text("{}")
        (weights / sub / name).write_bytes(b"")
    checkpoint = tmp_path / "keypoints.pt"
    checkpoint.write_bytes(b"")
    report = probe_backend(BackendSettings(python=sys.executable, weights=str(weights), checkpoint=str(checkpoint)))
    assert "problem" not in report, report
    assert report["protocol"] == 1 and "rig-mesh" in report["commands"] and report["torch"].startswith("2.")
    assert report["device"] == "CPU" or report["cuda"]
    assert report["sv3d_weights"] == str(weights) and report["checkpoint"] == str(checkpoint)
    missing = probe_backend(BackendSettings(python=sys.executable, weights=str(tmp_path / "none"),
                                            checkpoint=str(tmp_path / "none.pt")))
    assert "sv3d_weights_problem" in missing and "checkpoint_problem" in missing
    shipped = probe_backend(BackendSettings(python=sys.executable, weights=str(tmp_path / "none")))
    assert shipped["checkpoint"].endswith("keypoints_cnn_humanoid_cpu.pt")   # the default one ships in the checkout
    lines = probe_summary(missing)
    assert lines[0][0] == "CHECKMARK" and any("SV3D weights" in text for _, text in lines)


def test_check_backend_with_a_missing_interpreter_says_where_to_fix_it(tmp_path: Path) -> None:
    report = probe_backend(BackendSettings(python=str(tmp_path / "python")))
    assert "does not exist" in report["problem"] and "preferences" in report["problem"]
    assert probe_summary(report)[0][0] == "ERROR"
