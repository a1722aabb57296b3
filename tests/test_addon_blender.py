"""The Blender extension inside the bpy 5.0.1 wheel, headless: registration, bundle import, Rig Selected Mesh.

Each check runs a script from tests/blender/ in a child process (bpy is slow to import and must not share a
process with torch), with HOME set to a throwaway folder so no user configuration is read or written. Inputs are
prepared here with backend code; the add-on itself never imports the backend.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from conftest import REPO, SHARED_DATA

pytest.importorskip("bpy", reason="the bpy wheel (bpy==5.0.1) is not installed")

from backend.export.gltf_reader import load_skinned_gltf  # noqa: E402
from backend.pipeline.markers import save_markers  # noqa: E402
from backend.pipeline.rig_mesh import RigMeshOptions, rig_mesh  # noqa: E402

BLENDER_SCRIPTS = REPO / "tests" / "blender"
RESULT_PREFIX = "KEYDIFF3D_RESULT "
FOX = SHARED_DATA / "rigs" / "Fox.glb"
CHARACTER = SHARED_DATA / "rigs" / "platformer_game_pack_Character.glb"


def run_in_blender(script: str, *args: str, home: Path, timeout: float = 300) -> dict:
    env = {**os.environ, "HOME": str(home), "HF_HUB_OFFLINE": "1", "TMPDIR": str(home / "tmp")}
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, str(BLENDER_SCRIPTS / script), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=home)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert done.returncode == 0 and lines, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def bar_with_markers(folder: Path) -> tuple[trimesh.Trimesh, Path]:
    """A bent 'leg' (vertical bar, three joints) as a procedural stand-in that needs no shared data."""
    folder.mkdir(parents=True, exist_ok=True)
    bar = trimesh.creation.box(extents=(0.2, 0.2, 2.0)).subdivide().subdivide().subdivide()
    bar.apply_translation((0, 0, 1.0))
    markers = folder / "markers.json"
    save_markers(markers, [[0, 0, 2.0], [0, 0, 1.0], [0, 0, 0.0]], edges=[[0, 1], [1, 2]])
    return bar, markers


def rig_mesh_config(folder: Path, vertices, faces, markers: Path, scenarios: list[str]) -> Path:
    np.savez(folder / "mesh.npz", vertices=np.asarray(vertices), faces=np.asarray(faces))
    config = {"mesh": str(folder / "mesh.npz"), "markers": str(markers), "python": sys.executable,
              "scenarios": scenarios}
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "config.json"


def character_config(folder: Path, path: Path, scenarios: list[str]) -> Path:
    """The character's mesh and, as markers, its own joints (the keypoints an ideal network would give)."""
    folder.mkdir(parents=True, exist_ok=True)
    asset = load_skinned_gltf(path)
    edges = [[int(p), i] for i, p in enumerate(asset.skeleton_parents) if p >= 0]
    save_markers(folder / "markers.json", asset.skeleton_joints, edges=edges)
    return rig_mesh_config(folder, asset.mesh.vertices, asset.mesh.faces, folder / "markers.json", scenarios)


# --- registration and packaging ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registration(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("home_registration")
    built = subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--output-dir",
                            str(home / "dist")], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    return run_in_blender("check_registration.py", str(home / "dist" / "keydiff3d_addon-0.1.0.zip"), home=home)


def test_extension_registers_and_unregisters_twice_without_leftovers(registration) -> None:
    for cycle in registration["cycles"]:
        enabled, disabled = cycle["enabled"], cycle["disabled"]
        assert len(enabled["types"]) == 7 and enabled["preferences"] and enabled["scene_settings"]
        assert enabled["progress"] and enabled["import_menu"] and enabled["load_handlers"] == 1
        assert disabled == {"types": [], "preferences": False, "scene_settings": False, "progress": False,
                            "import_menu": False, "load_handlers": 0}


def test_built_zip_installs_from_disk_and_enables_as_an_extension(registration) -> None:
    installed = registration["zip"]
    assert installed["outcome"] == ["FINISHED"] and installed["enabled"]
    assert len(installed["registered"]["types"]) == 7
    assert installed["after_disable"]["types"] == []


def test_panels_and_preferences_draw_every_state_with_existing_properties_and_operators(registration) -> None:
    drawn = registration["drawn"]
    assert drawn["operators"] == ["keydiff3d.cancel", "keydiff3d.check_backend", "keydiff3d.image_to_rig",
                                  "keydiff3d.rig_selected"]
    assert drawn["progress_drawn"]


def test_check_backend_button_reports_a_missing_interpreter_in_one_line(registration) -> None:
    check = registration["check_backend"]
    assert check["outcome"] == ["CANCELLED"] and "/nonexistent/keydiff3d/python" in check["report"]
    assert "does not exist" in check["stored"]["problem"]


# --- File > Import > KeyDiff3D Bundle ------------------------------------------------------------------------------
def bundle_sources() -> list:
    params = [pytest.param("bar", id="procedural-bar")]
    params.append(pytest.param(FOX, id="Fox", marks=pytest.mark.skipif(not FOX.is_file(), reason="no shared data")))
    return params


@pytest.fixture(scope="module", params=bundle_sources())
def imported(request, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bundle_src")
    if request.param == "bar":
        bar, markers = bar_with_markers(folder)
        bar.export(folder / "bar.ply")
        mesh_path = folder / "bar.ply"
    else:
        character_config(folder, request.param, [])
        mesh_path, markers = request.param, folder / "markers.json"
    bundle = rig_mesh(mesh_path, folder / "bundle", RigMeshOptions(markers=str(markers)))
    return run_in_blender("check_import.py", str(bundle), home=tmp_path_factory.mktemp("home_import"))


def test_imported_bones_have_the_rigs_heads_tails_and_parents(imported) -> None:
    assert imported["outcome"] == ["FINISHED"]
    assert imported["bone_names_equal"] and imported["parents_equal"]
    assert imported["head_error"] <= 1e-5 and imported["tail_error"] <= 1e-5


def test_imported_vertex_groups_hold_exactly_the_bundles_weights(imported) -> None:
    assert imported["vertex_count"][0] == imported["vertex_count"][1]
    assert imported["weight_error"] <= 1e-6


def test_import_leaves_mesh_and_armature_bound_in_one_collection_and_the_armature_in_pose_mode(imported) -> None:
    assert imported["collection_objects"] == ["ARMATURE", "MESH"]
    assert imported["modifiers"][0][0] == "ARMATURE" and imported["parent_is_armature"]
    assert (imported["active_type"], imported["mode"]) == ("ARMATURE", "POSE")


def test_rotating_one_pose_bone_moves_exactly_the_vertices_weighted_to_it(imported) -> None:
    assert imported["moved_without_weight"] == 0
    assert imported["strongly_weighted_not_moved"] == 0 and imported["moved_count"] > 0
    assert imported["pose_error_relative"] < 1e-5      # the depsgraph's result equals linear blend skinning


def test_a_failure_half_way_through_an_import_leaves_no_data_behind(imported) -> None:
    failed = imported["failed_import"]
    assert failed["outcome"] == ["CANCELLED"] and "simulated failure" in failed["report"]
    assert failed["counts_unchanged"] and failed["mode"] == "OBJECT"


# --- Rig Selected Mesh with the real backend -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def procedural_runs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("rig_selected_bar")
    bar, markers = bar_with_markers(folder)
    config = rig_mesh_config(folder, bar.vertices, bar.faces, markers, ["empties", "geometry", "kill", "network",
                                                                    "missing_python", "subdivided"])
    return run_in_blender("check_rig_selected.py", str(config), home=tmp_path_factory.mktemp("home_rs"))


def check_bound_in_place(run: dict, rest_tolerance: float | None = 1e-4) -> None:
    assert run["outcome"] == ["FINISHED"], run["report"]
    assert run["armature_type"] == "ARMATURE" and run["active_is_armature"] and run["mode"] == "POSE"
    assert run["matrix_change"] == 0.0 and run["materials_kept"] and run["keep_me_weight"] == pytest.approx(0.75)
    assert run["first_modifier"] == ["ARMATURE", True]
    assert run["new_groups"] == run["deforming_bones"] > 0
    assert run["folders_left"] == []
    if rest_tolerance is not None:          # bound at rest, the mesh has not moved
        assert run["rest_unchanged"] < rest_tolerance
    assert run["moved"] > 0 and run["moved_without_influence"] == 0


def test_rig_selected_mesh_from_marker_empties_binds_the_original_object_in_place(procedural_runs) -> None:
    check_bound_in_place(procedural_runs["empties"])


def test_rig_selected_mesh_by_default_rigs_from_the_mesh_shape_without_markers(procedural_runs) -> None:
    check_bound_in_place(procedural_runs["geometry"])


def test_a_topology_changing_modifier_rigs_the_base_mesh_and_keeps_the_modifier_after_the_armature(
        procedural_runs) -> None:
    run = procedural_runs["subdivided"]
    check_bound_in_place(run, rest_tolerance=None)
    assert run["modifier_types"] == ["ARMATURE", "SUBSURF"]


def test_killing_the_backend_mid_run_reports_once_and_leaves_the_scene_as_it_was(procedural_runs) -> None:
    killed = procedural_runs["kill"]
    assert killed["killed_after_hello"]
    assert killed["report"][0] == "ERROR" and "backend_crashed" in killed["report"][1]
    assert killed["unchanged"] and killed["folders_left"] == [] and killed["active_cleared"]


def test_a_backend_error_is_one_clear_report_and_adds_nothing(procedural_runs) -> None:
    failed = procedural_runs["network"]
    assert failed["outcome"] == ["CANCELLED"] and "[missing_weights]" in failed["report"]
    assert failed["unchanged"] and failed["folders_left"] == []


def test_a_missing_backend_interpreter_is_one_clear_report_and_adds_nothing(procedural_runs) -> None:
    failed = procedural_runs["missing_python"]
    assert failed["outcome"] == ["CANCELLED"] and "no_such_python" in failed["report"]
    assert "preferences" in failed["report"] and failed["unchanged"] and failed["folders_left"] == []


@pytest.mark.parametrize("character", [
    pytest.param(FOX, id="Fox"),
    pytest.param(CHARACTER, id="platformer-Character", marks=pytest.mark.slow),
])
def test_rig_selected_mesh_on_a_real_character_poses_it_with_the_real_backend(character, tmp_path_factory) -> None:
    if not character.is_file():
        pytest.skip(f"{character.name} is not in ../shared/data/rigs")
    folder = tmp_path_factory.mktemp(f"rig_selected_{character.stem}")
    config = character_config(folder, character, ["rig"])
    run = run_in_blender("check_rig_selected.py", str(config), home=tmp_path_factory.mktemp("home_char"))["rig"]
    check_bound_in_place(run)


# --- Image → Rigged Mesh and the modal (UI) path -------------------------------------------------------------------
def write_shim(path: Path, body: str) -> Path:
    """An executable that the add-on runs as its 'backend Python' (argv: -m backend rig IMAGE -o OUT --json ...)."""
    path.write_text(f"#!{sys.executable}\nimport json, os, sys, time\n{body}")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("image_job")
    bar, markers = bar_with_markers(folder)
    bar.export(folder / "bar.ply")
    log = folder / "shim_argv.json"
    shim = write_shim(folder / "image_backend", f"""
args = sys.argv[1:]
image = args[3]
json.dump({{"argv": args, "image_exists": os.path.isfile(image), "image_suffix": os.path.splitext(image)[1]}},
          open({str(log)!r}, "w"))
out = args[args.index("-o") + 1]
os.execv({sys.executable!r}, [{sys.executable!r}, "-m", "backend", "rig-mesh", {str(folder / "bar.ply")!r},
                              "-o", out, "--markers", {str(markers)!r}, "--json"])
""")
    slow_shim = write_shim(folder / "slow_backend", """
print(json.dumps({"type": "hello", "protocol": 1, "version": "slow"}), flush=True)
print(json.dumps({"type": "progress", "stage": "views", "fraction": 0.2, "message": "orbit"}), flush=True)
time.sleep(120)
""")
    config = folder / "config.json"
    config.write_text(json.dumps({"python": sys.executable, "shim": str(shim), "shim_log": str(log),
                                  "slow_shim": str(slow_shim)}))
    return run_in_blender("check_image_job.py", str(config), home=tmp_path_factory.mktemp("home_image"))


def test_image_job_passes_the_image_and_options_and_imports_a_posable_collection(image_runs) -> None:
    run = image_runs["image_file"]
    assert run["outcome"] == ["FINISHED"], run["report"]
    assert run["collection"] == "fox_photo" and run["objects"] == ["ARMATURE", "MESH"]
    assert (run["active"], run["mode"]) == ("ARMATURE", "POSE") and run["folders_left"] == []
    sent = image_runs["image_file_argv"]
    assert sent["argv"][:3] == ["-m", "backend", "rig"] and sent["image_exists"]
    assert sent["argv"][sent["argv"].index("--seed") + 1] == "7"
    assert sent["argv"][sent["argv"].index("--preset") + 1] == "cpu_small"
    assert "--json" in sent["argv"]


def test_an_unsaved_blender_image_is_handed_to_the_backend_as_a_png(image_runs) -> None:
    run = image_runs["blender_image"]
    assert run["outcome"] == ["FINISHED"], run["report"]
    assert run["argv"]["image_exists"] and run["argv"]["image_suffix"] == ".png"


def test_image_job_failures_are_one_report_and_add_nothing(image_runs) -> None:
    missing = image_runs["missing_image"]
    assert missing["outcome"] == ["CANCELLED"] and "nope.png" in missing["report"] and missing["unchanged"]
    no_job = image_runs["real_backend_without_weights"]     # the real backend, without weights or a checkpoint here
    # the shipped keypoint checkpoint loads; then SV3D-p (no weights here) or, for a photo without transparency,
    # the optional background remover is missing: either way one clear report with the backend's code
    assert no_job["outcome"] == ["CANCELLED"] and re.search(r"\[missing_(weights|dependency)\]", no_job["report"])
    assert no_job["unchanged"] and no_job["folders_left"] == []


def test_modal_operator_shows_progress_then_imports_as_one_finished_step(image_runs) -> None:
    modal = image_runs["modal"]
    assert modal["outcome"] == ["FINISHED"] and modal["was_running"] and modal["progress_cleared"]
    backend_stages = {"load", "keypoints", "skeleton", "skinning", "export"}
    assert set(modal["stages"]) & backend_stages and modal["folders_left"] == []   # sampled as the timer sees them
    assert [level for level, _ in modal["reports"]] == [["INFO"]]


def test_escape_in_the_modal_operator_cancels_the_backend_and_adds_nothing(image_runs) -> None:
    modal = image_runs["modal_escape"]
    assert modal["outcome"] == ["CANCELLED"] and "views" in modal["stages"]
    assert modal["reports"][0][0] == ["WARNING"] and "cancelled" in modal["reports"][0][1]
    assert modal["unchanged"] and modal["folders_left"] == [] and modal["progress_cleared"]
