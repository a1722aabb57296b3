"""Synthetic articulated bodies: valid skinned bodies per category, mocap-driven humans, honest splits,
byte-identical output per seed, and true joints that land inside the rendered silhouettes."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from backend.cameras import DEFAULT_FIT_RADIUS, DEFAULT_HALF_SIZE, project
from backend.errors import KeyDiffError
from backend.export.gltf_reader import load_skinned_gltf
from backend.export.gltf_validate import has_gltf_validator, validate_gltf
from backend.views.viewset import ViewSet
from training.data import load_views
from training.make_synthetic import main as make_synthetic_main
from training.synthetic.body import skinned_mesh
from training.synthetic.bvh import read_bvh
from training.synthetic.dataset import DatasetSettings, load_clips, plan, write_dataset
from training.synthetic.examples import EXAMPLES
from training.synthetic.examples import main as write_examples
from training.synthetic.humanoid import H36M_JOINTS, HEIGHT_RANGE_M, build_humanoid
from training.synthetic.poses import apply_pose, mocap_rotations, random_pose_rotations
from training.synthetic.retarget import BONE_SOURCES, CMU_INDEX, cmu_motion, retarget_world_rotations
from training.synthetic.pack import main as pack_main
from training.synthetic.sample import BUILDERS, CATEGORIES, SampleSpec, build_sample

FAKE_CLIPS = {"cmu_01_01": 2752, "cmu_01_14": 2339, "cmu_02_01": 344, "cmu_scaled_131_01": 995}


def _edge_use_counts(faces: np.ndarray) -> np.ndarray:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return counts


def _joints_inside_some_part(mesh, part_of_vertex: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """[J] bool: each joint lies inside at least one closed part (parts overlap, so test them one by one)."""
    inside = np.zeros(len(joints), bool)
    face_part = part_of_vertex[mesh.faces[:, 0]]
    for part in np.unique(part_of_vertex):
        surface = trimesh.Trimesh(mesh.vertices, mesh.faces[face_part == part], process=False)
        inside |= surface.contains(joints)
    return inside


@pytest.mark.parametrize("category", CATEGORIES)
def test_each_category_builds_a_valid_rig_and_closed_skinned_mesh(category: str) -> None:
    for seed in range(3):
        body = BUILDERS[category](np.random.default_rng([seed, 7]), f"{category}-{seed}")
        mesh, weights, part_of_vertex = skinned_mesh(body)
        assert body.rig.num_joints >= 8 and body.category == category
        assert 2_000 <= len(mesh.faces) <= 20_000, len(mesh.faces)
        assert (_edge_use_counts(mesh.faces) == 2).all()              # a union of closed surfaces
        assert weights.num_vertices == mesh.num_vertices and weights.num_bones == body.rig.num_bones
        np.testing.assert_allclose(weights.weights.sum(axis=1), 1.0, atol=1e-6)
        assert (weights.weights >= 0).all()
        assert mesh.colors is not None and len(np.unique(mesh.colors[:, :3], axis=0)) >= 3  # several hues
        assert body.pose_limits.shape == (body.rig.num_bones, 2, 3)
        assert (body.pose_limits[:, 0] <= body.pose_limits[:, 1]).all()
        assert _joints_inside_some_part(mesh, part_of_vertex, body.rig.joints).all()   # no floating skeleton


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_body_of_a_category_has_the_same_skeleton(category: str) -> None:
    rigs = [BUILDERS[category](np.random.default_rng([seed, 11]), "b").rig for seed in range(6)]
    assert len({r.names for r in rigs}) == 1 and len({tuple(r.parents) for r in rigs}) == 1
    assert len({round(float(np.ptp(r.joints[:, 1])), 6) for r in rigs}) > 1     # but the proportions differ


def test_weights_blend_only_near_joints_and_follow_their_part() -> None:
    body = build_humanoid(np.random.default_rng(3), "h")
    mesh, weights, part_of_vertex = skinned_mesh(body)
    names = [p.name for p in body.parts]
    dense = weights.to_dense()
    forearm = body.rig.bone_names.index("left_wrist")
    upper = body.rig.bone_names.index("left_elbow")
    hand = part_of_vertex == names.index("left_hand")
    np.testing.assert_allclose(dense[hand, forearm], 1.0)           # the hand rides rigidly on the forearm
    arm = part_of_vertex == names.index("left_upper_arm")
    elbow = body.rig.joints[body.rig.names.index("left_elbow")]
    near = np.linalg.norm(mesh.vertices[arm] - elbow, axis=1) < 0.05
    assert (dense[arm][near, forearm] > 0.05).any()                  # elbow skin blends into the forearm
    mid = np.abs(np.linalg.norm(mesh.vertices[arm] - elbow, axis=1) - 0.15) < 0.02
    np.testing.assert_allclose(dense[arm][mid, upper], 1.0)          # mid upper arm: the upper arm only


def test_humanoid_has_h36m_joints_and_a_realistic_height_in_metres() -> None:
    heights = []
    for seed in range(6):
        body = build_humanoid(np.random.default_rng(seed), "h")
        mesh, _, _ = skinned_mesh(body)
        assert body.rig.names == H36M_JOINTS and body.units == "metres"
        height = float(np.ptp(mesh.vertices[:, 2]))
        assert height == pytest.approx(body.extras["height_m"], rel=1e-9)
        assert HEIGHT_RANGE_M[0] <= height <= HEIGHT_RANGE_M[1]
        heights.append(height)
        joints = dict(zip(body.rig.names, body.rig.joints))
        assert joints["head"][2] > joints["neck"][2] > joints["thorax"][2] > joints["pelvis"][2] > joints["left_knee"][2]
        assert joints["left_hip"][0] > 0 > joints["right_hip"][0]      # left at +X: facing -Y
    assert np.ptp(heights) > 0.05                                     # proportions actually vary


@pytest.fixture(scope="module")
def walk(shared_data):
    return read_bvh(shared_data / "mocap" / "cmu_02_01.bvh")


def test_retargeted_bones_point_exactly_where_the_mocap_segments_point(walk) -> None:
    body = build_humanoid(np.random.default_rng(0), "h")
    frames = np.arange(1, walk.num_frames, 37)
    motion = cmu_motion(walk, frames)
    world = retarget_world_rotations(body.rig, motion)                # [F, B, 3, 3]
    rest_dirs = body.rig.bone_tails - body.rig.bone_heads
    rest_dirs /= np.linalg.norm(rest_dirs, axis=1, keepdims=True)
    for b, name in enumerate(body.rig.bone_names):
        src, dst, _ = (CMU_INDEX[n] for n in BONE_SOURCES[name])
        want = motion.positions[:, dst] - motion.positions[:, src]
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        np.testing.assert_allclose(world[:, b] @ rest_dirs[b], want, atol=1e-9)


def test_mocap_humans_face_front_and_keep_their_bone_lengths(walk) -> None:
    body = build_humanoid(np.random.default_rng(1), "h")
    mesh, weights, part_of_vertex = skinned_mesh(body)
    feet = np.isin(part_of_vertex, [i for i, p in enumerate(body.parts) if p.name.endswith("_foot")])
    rest_lengths = np.linalg.norm(body.rig.bone_tails - body.rig.bone_heads, axis=1)
    for frame in range(1, walk.num_frames, 43):
        posed = apply_pose(body, mesh.vertices, weights, mocap_rotations(body.rig, walk, frame))
        j = dict(zip(body.rig.names, posed.joints))
        across = j["left_hip"] - j["right_hip"]
        assert across[0] > 0.9 * np.linalg.norm(across[:2])           # hips square to the front view
        lengths = np.linalg.norm(posed.joints[body.rig.bone_tail_joint] - posed.joints[body.rig.bone_head_joint], axis=1)
        np.testing.assert_allclose(lengths, rest_lengths, rtol=1e-9)
        assert j["head"][2] > j["pelvis"][2] > max(j["left_ankle"][2], j["right_ankle"][2])   # walking upright
        ankles = (j["left_ankle"] + j["right_ankle"]) / 2
        assert posed.vertices[feet, 1].mean() < ankles[1]               # toes point forward (-Y)


@pytest.mark.parametrize("category", [c for c in CATEGORIES if c != "humanoid"])
def test_random_poses_stay_within_limits_and_move_the_body(category: str) -> None:
    body = BUILDERS[category](np.random.default_rng(5), "b")
    mesh, weights, _ = skinned_mesh(body)
    moved = []
    for seed in range(4):
        rotations = random_pose_rotations(body, np.random.default_rng(seed))
        angles = Rotation.from_matrix(rotations).as_euler("xyz", degrees=True)
        assert (angles >= body.pose_limits[:, 0] - 1e-6).all() and (angles <= body.pose_limits[:, 1] + 1e-6).all()
        posed = apply_pose(body, mesh.vertices, weights, rotations)
        moved.append(np.abs(posed.joints - body.rig.joints).max())
    assert min(moved) > 1e-3


def test_splits_never_share_clips_or_bodies_and_hold_out_a_fifth() -> None:
    settings = DatasetSettings(n=600, seed=3, clip_frames=FAKE_CLIPS)
    specs = plan(settings)
    train = [s for s in specs if s.split == "train"]
    test = [s for s in specs if s.split == "test"]
    assert len(test) == 120 and len(train) == 480                       # 20 % of each category's 100
    assert {s.body_id for s in train}.isdisjoint({s.body_id for s in test})
    assert {s.body_seed for s in train}.isdisjoint({s.body_seed for s in test})
    train_clips = {s.clip_id for s in train if s.category == "humanoid"}
    test_clips = {s.clip_id for s in test if s.category == "humanoid"}
    assert test_clips == {"cmu_02_01"} and "cmu_02_01" not in train_clips and len(train_clips) == 3
    assert all(1 <= s.frame < FAKE_CLIPS[s.clip_id] for s in specs if s.clip_id)
    assert len({s.sample_id for s in specs}) == len(specs)
    per_body = [sum(s.body_id == b for s in train) for b in {s.body_id for s in train}]
    assert max(per_body) == settings.poses_per_body                    # a body is seen in several poses
    assert plan(settings) == specs                                     # the plan is a function of the settings


def test_humanoids_without_a_test_clip_are_refused() -> None:
    settings = DatasetSettings(n=25, clip_frames={"cmu_01_01": 100})   # the 5th human is a test one
    with pytest.raises(KeyDiffError) as err:
        plan(settings)
    assert err.value.code == "invalid_argument" and "test motion clip" in err.value.message


@pytest.mark.parametrize("kwargs, fragment", [
    ({"n": 0}, "--n"), ({"categories": ("dragon",)}, "categories"), ({"frames": (3, 21)}, "orbit frames"),
    ({"test_fraction": 1.0}, "test_fraction"),
])
def test_bad_dataset_settings_name_the_bad_value(kwargs: dict, fragment: str) -> None:
    with pytest.raises(KeyDiffError) as err:
        plan(DatasetSettings(**kwargs))
    assert err.value.code == "invalid_argument" and fragment in err.value.message


def _tiny_dataset(out: Path, seed: int, shared: bool, size: int = 64) -> dict:
    """One sample per category at `size` px from 3 orbit views (the humanoid uses real mocap when present)."""
    mocap = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mocap"
    clips = load_clips(sorted(mocap.glob("*.bvh"))) if shared and mocap.is_dir() else {}
    settings = DatasetSettings(n=len(CATEGORIES), seed=seed, image_size=size, frames=(20, 5, 12),
                               test_fraction=0.0, clip_frames={k: c.num_frames for k, c in clips.items()})
    return write_dataset(out, settings, clips)


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path) -> None:
    first = _tiny_dataset(tmp_path / "a", seed=11, shared=True)
    _tiny_dataset(tmp_path / "b", seed=11, shared=True)
    _tiny_dataset(tmp_path / "c", seed=12, shared=True)
    a, b, c = (_tree_bytes(tmp_path / x) for x in "abc")
    assert not [p for p in a if Path(p).name.startswith(".")]          # no temporary files left behind
    assert a == b
    assert a.keys() == c.keys() and a != c
    for row in first["samples"]:
        folder = tmp_path / "a" / row["path"]
        assert {"joints.json", "mesh.glb", "weights.npz", "views"} <= {p.name for p in folder.iterdir()}


def test_true_joints_project_inside_the_masks(tmp_path) -> None:
    # 128 px: thin legs and edge-on wings are a pixel wide there (at 64 px they can vanish between rays)
    record = _tiny_dataset(tmp_path / "ds", seed=5, shared=True, size=128)
    for row in record["samples"]:
        folder = tmp_path / "ds" / row["path"]
        joints = np.asarray(json.loads((folder / "joints.json").read_text())["joints_canonical"])
        views = ViewSet.load(folder / "views")
        assert len(views) == 3 and views.size == (128, 128)
        for mask, camera in zip(views.masks, views.cameras):
            pixels, depth = project(joints, camera)
            assert (depth > 0).all()
            # dilate by one pixel: a joint on a thin limb can project onto a pixel whose centre ray just misses
            padded = np.pad(mask, 1)
            grown = np.zeros_like(mask)
            for dy in (0, 1, 2):
                for dx in (0, 1, 2):
                    grown |= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
            col, row_ = np.floor(pixels).astype(int).T
            assert ((col >= 0) & (col < 128) & (row_ >= 0) & (row_ < 128)).all()
            assert grown[row_, col].all(), (row["id"], np.flatnonzero(~grown[row_, col]))
            assert not mask[[0, -1]].any() and not mask[:, [0, -1]].any()   # the body never leaves the frame


def test_sample_files_describe_the_same_body(tmp_path, shared_data) -> None:
    record = _tiny_dataset(tmp_path / "ds", seed=2, shared=True)
    assert record["mocap_acknowledgement"].startswith("The data used in this project was obtained from mocap.cs.cmu.edu")
    human = next(r for r in record["samples"] if r["category"] == "humanoid")
    assert human["clip_id"] is not None and human["frame"] >= 1
    folder = tmp_path / "ds" / human["path"]
    meta = json.loads((folder / "joints.json").read_text())
    assert meta["names"] == list(H36M_JOINTS) and meta["body_units"] == "metres"
    joints_m, joints_c = np.asarray(meta["joints_body"]), np.asarray(meta["joints_canonical"])
    to_canonical = np.asarray(meta["body_to_canonical"])
    np.testing.assert_allclose(joints_m @ to_canonical[:3, :3].T + to_canonical[:3, 3], joints_c, atol=1e-9)
    assert np.abs(joints_c).max() < 0.6                                  # inside the canonical cube
    assert 1.2 < np.ptp(joints_m[:, 2]) < 1.9                            # a standing human, in metres
    asset = load_skinned_gltf(folder / "mesh.glb")
    np.testing.assert_allclose(asset.rig.joints, joints_c, atol=1e-5)
    assert asset.rig.names == tuple(meta["names"])
    with np.load(folder / "weights.npz") as data:
        assert data["indices"].shape == (asset.mesh.num_vertices, 4)
        np.testing.assert_allclose(data["weights"].sum(axis=1), 1.0, atol=1e-6)


def test_build_sample_is_deterministic_and_respects_the_canonical_cube() -> None:
    spec = SampleSpec("quadruped_00000", "train", "quadruped", "quadruped-train-0000", (1, 1, 0, 0, 0), (1, 1, 0, 0, 1))
    one, two = build_sample(spec), build_sample(spec)
    np.testing.assert_array_equal(one.mesh.vertices, two.mesh.vertices)
    np.testing.assert_array_equal(one.rig.joints, two.rig.joints)
    lo, hi = one.mesh.bounding_box()
    assert np.abs(lo + hi).max() < 1e-9                                   # centred on its bounding box
    reach = np.linalg.norm(one.mesh.vertices, axis=1).max()
    assert reach == pytest.approx(min(DEFAULT_HALF_SIZE, DEFAULT_FIT_RADIUS))  # the project's one canonical fit
    other = build_sample(replace(spec, pose_seed=(1, 1, 0, 0, 2)))
    assert not np.allclose(other.rig.joints, one.rig.joints)             # a new pose, same body
    assert one.body.rig.joints.tolist() == other.body.rig.joints.tolist()


def test_command_line_writes_a_dataset_and_refuses_a_non_empty_folder(tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    args = ["--out", str(out), "--n", "2", "--seed", "1", "--categories", "snake", "bird", "--size", "32",
            "--views", "20", "0"]
    assert make_synthetic_main(args) == 0
    index = json.loads((out / "index.json").read_text())
    assert [r["category"] for r in index["samples"]] == ["snake", "bird"]
    assert "mocap_acknowledgement" not in index
    assert make_synthetic_main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert make_synthetic_main(args + ["--overwrite"]) == 0


def test_committed_examples_are_what_the_generator_writes(tmp_path) -> None:
    committed = Path(__file__).resolve().parents[1] / "examples"
    assert write_examples(["--out", str(tmp_path)]) == 0
    for name, category, _ in EXAMPLES:
        fresh = _tree_bytes(tmp_path / name)
        assert fresh == _tree_bytes(committed / name), f"examples/{name} is stale: regenerate it (examples/README.md)"
        meta = json.loads(fresh["joints.json"])
        assert meta["category"] == category and 200_000 < len(fresh["mesh.glb"]) < 600_000
    human = json.loads((committed / "humanoid" / "joints.json").read_text())
    assert human["names"] == list(H36M_JOINTS) and human["body_units"] == "metres"
    assert HEIGHT_RANGE_M[0] < human["body_facts"]["height_m"] < HEIGHT_RANGE_M[1]


def test_generated_meshes_pass_the_gltf_validator(tmp_path) -> None:
    if not has_gltf_validator():
        pytest.skip("the Khronos glTF validator (npm) is not installed")
    committed = Path(__file__).resolve().parents[1] / "examples"
    for path in sorted(committed.glob("*/mesh.glb")):
        report = validate_gltf(path)
        assert report.num_errors == 0, report.summary()


def test_pack_gives_training_splits_per_category_with_metres_only_for_humans(tmp_path) -> None:
    settings = DatasetSettings(n=2 * len(CATEGORIES), seed=4, image_size=32, frames=(4, 20, 9),
                               test_fraction=0.5, clip_frames={})
    write_dataset(tmp_path / "ds", settings)
    assert pack_main(["--data", str(tmp_path / "ds"), "--out", str(tmp_path / "packed")]) == 0
    for category in CATEGORIES:
        for split in ("train", "test"):
            views = load_views(tmp_path / "packed" / category / f"{split}.npz")
            meta = json.loads((tmp_path / "ds" / split / f"{category}_0000{0 if split == 'train' else 1}" /
                               "joints.json").read_text())
            assert views.frames.tolist() == [20, 4, 9]                   # input view first
            assert views.images.shape == (1, 3, 32, 32, 3) and views.image_size == (32, 32)
            np.testing.assert_allclose(views.joints[0], meta["joints_canonical"], atol=1e-6)
            assert views.joint_names.tolist() == meta["names"] and views.groups.tolist() == [meta["body_id"]]
            # the packed projection sends the canonical joints to the same pixels as the sample's camera
            camera = ViewSet.load(tmp_path / "ds" / split / meta["sample_id"] / "views").cameras[1]
            homog = np.concatenate([views.joints[0], np.ones((len(views.joints[0]), 1))], axis=1) @ views.projections[0, 0].T
            np.testing.assert_allclose(homog[:, :2] / homog[:, 2:], project(views.joints[0], camera)[0], atol=1e-3)
            if category == "humanoid":
                to_canonical = np.asarray(meta["body_to_canonical"])
                assert views.joint_scale[0] == pytest.approx(1.0 / to_canonical[0, 0], rel=1e-6)
            else:
                assert views.joint_scale is None
    assert pack_main(["--data", str(tmp_path / "ds"), "--out", str(tmp_path / "p2"), "--views", "20", "5"]) == 2


def test_an_interrupted_run_resumes_to_the_same_bytes_and_refuses_other_settings(tmp_path) -> None:
    out = tmp_path / "ds"
    settings = DatasetSettings(n=3, seed=8, categories=("snake", "insect", "bird"), image_size=32, frames=(20, 7))
    write_dataset(out, settings)
    finished = _tree_bytes(out)
    assert "index.json" in finished and "plan.json" not in finished
    # simulate a crash after the first sample: the plan is still there, later samples are missing
    (out / "index.json").rename(out / "plan.json")
    for row in json.loads((out / "plan.json").read_text())["samples"][1:]:
        shutil.rmtree(out / row["path"])
    with pytest.raises(KeyDiffError) as err:
        write_dataset(out, settings)
    assert "--resume" in err.value.message
    with pytest.raises(KeyDiffError) as err:
        write_dataset(out, replace(settings, seed=9), resume=True)
    assert "other settings" in err.value.message
    done = []
    write_dataset(out, settings, resume=True, progress=done.append)
    assert len(done) == 3 and _tree_bytes(out) == finished
