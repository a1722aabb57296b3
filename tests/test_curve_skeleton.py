"""The geometric skeleton (rig-mesh --keypoints geometry): curve skeletons of known shapes, joints where an
artist expects them, clear errors, and rig-mesh end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.curve_joints import DEFAULT_SPACING, curve_joints
from backend.curve_skeleton import curve_skeleton
from backend.errors import KeyDiffError
from backend.export.bundle import read_bundle_weights, read_rig_document, rig_from_document
from backend.mesh import Mesh
from backend.mesh_io import load_mesh
from backend.pipeline.rig_mesh import RigMeshOptions, rig_mesh
from backend.rig import Rig
from backend.skeleton import build_skeleton

from conftest import REPO, shared_rig_files


def capsule(direction, length: float = 1.0, radius: float = 0.1) -> trimesh.Trimesh:
    """A capsule whose axis runs from the origin to `length` along `direction` (cap centres at both ends)."""
    shape = trimesh.creation.capsule(height=length, radius=radius, count=[16, 16])     # along z, centred
    axis = np.asarray(direction, float) / np.linalg.norm(direction)
    shape.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], axis))
    shape.apply_translation(axis * length / 2)
    return shape


def geometric_rig(shape: trimesh.Trimesh) -> Rig:
    keypoints, adjacency = curve_joints(curve_skeleton(shape.vertices, shape.faces))
    return build_skeleton(keypoints, adjacency, object_size=float(np.linalg.norm(np.ptp(shape.vertices, axis=0)))).rig


def joint_degrees(rig: Rig) -> np.ndarray:
    child = np.flatnonzero(rig.parents >= 0)
    return np.bincount(np.concatenate([child, rig.parents[child]]), minlength=rig.num_joints)


def test_a_capsule_gives_one_chain_along_its_axis_from_cap_to_cap() -> None:
    shape = capsule([0, 0, 1], length=2.0, radius=0.2)
    keypoints, adjacency = curve_joints(curve_skeleton(shape.vertices, shape.faces))
    links = (adjacency > 0).sum(axis=1)
    assert links.max() <= 2 and (links == 1).sum() == 2                  # one chain, two ends
    assert np.abs(keypoints[:, :2]).max() < 0.05                         # on the axis
    ends = np.sort(keypoints[links == 1, 2])
    np.testing.assert_allclose(ends, [0.0, 2.0], atol=0.1)               # at the cap centres, not in the air
    order = np.argsort(keypoints[:, 2])
    gaps = np.diff(keypoints[order, 2])
    assert gaps.max() <= DEFAULT_SPACING * 2.4 + 0.03                    # spacing x longest side + a voxel
    assert len(keypoints) >= 2.0 / (DEFAULT_SPACING * 2.4)


@pytest.mark.parametrize("directions", [
    [[1, 0, 0], [-0.5, 0.866, 0], [-0.5, -0.866, 0]],
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]],
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]],
], ids=["3 arms", "cross", "5 arms in 3D"])
def test_a_star_of_capsules_gives_one_fork_and_one_tip_per_arm(directions) -> None:
    rig = geometric_rig(trimesh.util.concatenate([capsule(d) for d in directions]))
    degree = joint_degrees(rig)
    forks = np.flatnonzero(degree >= 3)
    assert len(forks) == 1 and degree[forks[0]] == len(directions)
    assert np.linalg.norm(rig.joints[forks[0]]) < 0.15                   # the fork sits where the arms meet
    tips = rig.joints[degree == 1]
    assert len(tips) == len(directions)
    arm_ends = np.asarray(directions, float) / np.linalg.norm(directions, axis=1, keepdims=True)
    nearest_tip = np.linalg.norm(arm_ends[:, None] - tips[None], axis=2).min(axis=1)
    # every arm ends on its axis, pulled back from its cap centre by about one radius (0.1): where a hand or a
    # foot would hinge (curve_joints.DEFAULT_TIP_PULLBACK)
    assert nearest_tip.max() < 0.1 + 0.12
    assert np.linalg.norm(np.cross(tips[:, None], arm_ends[None]), axis=2).min(axis=1).max() < 0.05
    assert rig.parents[forks[0]] == -1                                   # rooted at the centre of the tree


def test_a_flat_mesh_is_refused_with_a_clear_error() -> None:
    plane = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    plane.vertices[:, 2] = 0.0
    with pytest.raises(KeyDiffError) as caught:
        curve_skeleton(plane.vertices, plane.faces)
    assert caught.value.code == "invalid_mesh" and "flat" in caught.value.message


def test_bad_settings_and_bad_faces_are_refused_by_name() -> None:
    shape = capsule([0, 0, 1])
    with pytest.raises(KeyDiffError, match="resolution"):
        curve_skeleton(shape.vertices, shape.faces, resolution=4)
    with pytest.raises(KeyDiffError, match="faces"):
        curve_skeleton(shape.vertices, np.array([[0, 1, len(shape.vertices)]]))
    with pytest.raises(KeyDiffError, match="spacing"):
        curve_joints(curve_skeleton(shape.vertices, shape.faces), spacing=0.0)


def test_markers_and_geometry_are_two_sources_and_cannot_be_combined() -> None:
    with pytest.raises(KeyDiffError) as caught:
        RigMeshOptions(markers="joints.json", keypoints="geometry")
    assert caught.value.code == "invalid_argument"
    with pytest.raises(KeyDiffError, match="--keypoints"):
        RigMeshOptions(keypoints="magic")


def test_rig_mesh_with_geometry_rigs_the_example_humanoid_head_to_feet(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    done = subprocess.run(
        [sys.executable, "-m", "backend", "rig-mesh", str(REPO / "examples" / "humanoid" / "mesh.glb"),
         "--keypoints", "geometry", "-o", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    doc = read_rig_document(out)
    assert doc["settings"]["keypoints"] == "geometry"
    rig = rig_from_document(doc)
    mesh = load_mesh(out / "mesh.glb")
    lo, hi = mesh.bounding_box()
    height = hi[2] - lo[2]
    assert np.ptp(rig.joints[:, 2]) > 0.8 * height                       # from the head down to the feet
    assert (joint_degrees(rig) == 1).sum() >= 5                          # head, two hands, two feet
    weights = read_bundle_weights(out).to_dense()
    assert weights.shape[0] == mesh.num_vertices
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)      # no vertex left unweighted
    assert json.loads((out / "rig.json").read_text())["format"]


@pytest.mark.skipif(not shared_rig_files(), reason="../shared/data/rigs is not beside this checkout")
def test_no_vertex_is_left_unweighted_on_a_character_made_of_many_parts(tmp_path: Path) -> None:
    spider = next(p for p in shared_rig_files() if "Spider" in p.name)   # 15 separate shells
    bundle = rig_mesh(spider, tmp_path / "bundle", RigMeshOptions(keypoints="geometry"))
    weights = read_bundle_weights(bundle).to_dense()
    assert weights.shape[0] == load_mesh(bundle / "mesh.glb").num_vertices
    assert (weights.sum(axis=1) > 0.999).all()


@pytest.mark.skipif(not shared_rig_files(), reason="../shared/data/rigs is not beside this checkout")
def test_geometric_skeletons_of_real_animals_beat_kmeans_centres() -> None:
    """On artist-rigged animals the curve skeleton must place joints better than 18 k-means centres joined by
    an MST (the floor every skeleton source is compared with), in the benchmark's normalisation."""
    from scipy.cluster.vq import kmeans2

    from backend.export.gltf_reader import load_skinned_gltf
    from backend.metrics.skeleton import apply_transform, skeleton_metrics, unit_cube_transform

    scores = {"geometry": [], "kmeans": []}
    for path in [p for p in shared_rig_files() if p.stem in ("Fox", "dinosaurs_pack_Trex", "animals_pack_Horse")]:
        asset = load_skinned_gltf(path)
        mesh: Mesh = asset.mesh
        to_unit = unit_cube_transform(mesh.vertices)
        size = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
        centres, _ = kmeans2(mesh.vertices, 18, seed=0, minit="++")
        rigs = {"geometry": geometric_rig(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)),
                "kmeans": build_skeleton(centres, np.ones((18, 18)), object_size=size).rig}
        truth = apply_transform(to_unit, asset.skeleton_joints)
        for name, rig in rigs.items():
            joints = apply_transform(to_unit, rig.joints)
            scores[name].append(skeleton_metrics(joints, rig.parents, truth, asset.skeleton_parents).cd_j2j)
    assert len(scores["geometry"]) == 3
    assert np.mean(scores["geometry"]) < 0.8 * np.mean(scores["kmeans"])
