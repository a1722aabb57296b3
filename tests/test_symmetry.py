"""Mirror-symmetric rigs with Blender's .L/.R names (backend/symmetry/): a symmetric character gets a rig whose
left and right joints are exact mirror images named as Blender's mirror tools expect, a lopsided one is left
alone, and `symmetry=False` gives the rig rig-mesh gave before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.cameras import canonical_transform
from backend.errors import KeyDiffError
from backend.export.bundle import read_rig_document, rig_from_document
from backend.floor_root import GROUND_JOINT, ROOT_BONE, add_floor_root, ground_point
from backend.mesh import Mesh
from backend.mesh_io import load_mesh
from backend.pipeline.keypoint_source import geometry_keypoints
from backend.pipeline.rig_mesh import RigMeshOptions, rig_mesh
from backend.skeleton import build_skeleton
from backend.symmetry import (
    CENTRE, LEFT, RIGHT, MirrorPlane, detect_mirror_plane, mirror_report, mirror_skeleton, mirror_tree,
    named_pairs, symmetrise_keypoints,
)

from conftest import shared_rig_files

X_PLANE = MirrorPlane(axis=0, offset=0.0, excess=0.0)


def two_legged(left_leg: float = 0.8, left_x: float = 0.15) -> trimesh.Trimesh:
    """A capsule body on two capsule legs at x = -0.15 and x = left_x, a nose to the front (-Y); feet on z = 0."""
    body = trimesh.creation.capsule(height=0.6, radius=0.2, count=[12, 12])
    body.apply_translation((0, 0, 1.3))
    nose = trimesh.creation.box(extents=(0.08, 0.2, 0.08))
    nose.apply_translation((0, -0.25, 1.5))
    legs = []
    for x, height in ((-0.15, 0.8), (left_x, left_leg)):
        leg = trimesh.creation.capsule(height=height, radius=0.08, count=[12, 12])
        leg.apply_translation((x, 0, 0.08 + height / 2))
        legs.append(leg)
    figure = trimesh.util.concatenate([body, nose, *legs])
    figure.apply_translation((0, 0, -figure.vertices[:, 2].min()))
    return figure


def as_mesh(shape: trimesh.Trimesh) -> Mesh:
    return Mesh(np.asarray(shape.vertices, np.float64), np.asarray(shape.faces, np.int64))


def noisy_legs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A spine on x = 0 (with voxel-sized wobble) and two 3-joint legs that are mirror images up to noise."""
    rng = np.random.default_rng(seed)
    spine = np.array([[0.003, 0, 1.0], [-0.004, 0, 1.4], [0.002, 0, 1.8]])
    leg = np.array([[0.15, 0, 0.9], [0.16, 0.02, 0.5], [0.15, 0.05, 0.1]])
    right = leg * [-1, 1, 1] + rng.normal(0, 0.01, leg.shape)
    keypoints = np.vstack([spine, leg + rng.normal(0, 0.01, leg.shape), right])        # [9, 3]
    links = [(0, 1), (1, 2), (0, 3), (3, 4), (4, 5), (0, 6), (6, 7), (7, 8)]
    adjacency = np.zeros((9, 9))
    for a, b in links:
        adjacency[a, b] = adjacency[b, a] = 1.0
    return keypoints, adjacency


def test_a_two_legged_body_is_mirror_symmetric_across_x_and_a_lopsided_one_is_not() -> None:
    plane = detect_mirror_plane(*_canonical(two_legged()))
    assert plane is not None and plane.name == "x" and plane.offset == pytest.approx(0.0, abs=1e-9)
    assert detect_mirror_plane(*_canonical(two_legged(left_leg=0.5, left_x=0.25))) is None


def test_a_body_facing_x_is_mirror_symmetric_across_y() -> None:
    turned = two_legged()
    turned.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 0, 1)))
    plane = detect_mirror_plane(*_canonical(turned))
    assert plane is not None and plane.name == "y"


def test_noisy_mirrored_keypoints_become_exact_pairs_named_L_and_R_with_one_base() -> None:
    keypoints, adjacency = noisy_legs()
    symmetric, weights, mirror = symmetrise_keypoints(keypoints, adjacency, X_PLANE, object_size=2.0)
    assert mirror.side.tolist() == [CENTRE] * 3 + [LEFT] * 3 + [RIGHT] * 3
    assert mirror.partner.tolist() == [-1, -1, -1, 6, 7, 8, 3, 4, 5]
    np.testing.assert_array_equal(symmetric[6:], X_PLANE.reflect(symmetric[3:6]))       # exact mirror images
    np.testing.assert_array_equal(weights, weights[np.ix_([0, 1, 2, 6, 7, 8, 3, 4, 5], [0, 1, 2, 6, 7, 8, 3, 4, 5])])

    rig = mirror_skeleton(build_skeleton(symmetric, weights, object_size=2.0), X_PLANE).rig
    pairs = named_pairs(rig.names)
    assert len(pairs) == 3
    for left, right in pairs:
        assert rig.names[left][:-2] == rig.names[right][:-2] and rig.joints[left, 0] > 0    # +X is the left (.L)
        np.testing.assert_allclose(X_PLANE.reflect(rig.joints[left]), rig.joints[right], atol=1e-12)
    bone_pairs = named_pairs(rig.bone_names)
    assert len(bone_pairs) == 3 and all(rig.bone_names[a].startswith("bone_") for a, _ in bone_pairs)
    report = mirror_report(rig, X_PLANE)
    assert (report.named_pairs, report.centre, report.unpaired, report.inconsistent) == (3, 3, 0, 0)


def test_keypoints_near_the_plane_land_on_it_and_far_ones_do_not() -> None:
    keypoints, adjacency = noisy_legs()
    symmetric, _, mirror = symmetrise_keypoints(keypoints, adjacency, X_PLANE, object_size=2.0)
    assert np.all(symmetric[:3, 0] == 0.0)
    np.testing.assert_array_equal(symmetric[:3, 1:], keypoints[:3, 1:])
    assert np.all(np.abs(symmetric[3:, 0]) > 0.1)


def test_a_leg_with_one_joint_more_gets_its_mirror_copy_and_an_arm_with_no_mirror_stays_alone() -> None:
    keypoints, adjacency = noisy_legs()
    knee = np.array([[0.155, 0.01, 0.7]])                     # between the left leg's joints 3 and 4
    arm = np.array([[0.6, 0.0, 1.6]])                         # a prop on the left only: nothing to mirror it near
    keypoints = np.vstack([keypoints, knee, arm])
    grown = np.zeros((11, 11))
    grown[:9, :9] = adjacency
    grown[3, 4] = grown[4, 3] = 0.0
    for a, b in ((3, 9), (9, 4), (2, 10)):
        grown[a, b] = grown[b, a] = 1.0
    symmetric, weights, mirror = symmetrise_keypoints(keypoints, grown, X_PLANE, object_size=2.0)
    assert len(symmetric) == 12 and mirror.partner[9] == 11 and mirror.partner[10] == -1
    np.testing.assert_array_equal(symmetric[11], X_PLANE.reflect(symmetric[9]))
    np.testing.assert_array_equal(symmetric[10], arm[0])
    rig = build_skeleton(symmetric, weights, object_size=2.0).rig
    report = mirror_report(mirror_skeleton(build_skeleton(symmetric, weights, object_size=2.0), X_PLANE).rig, X_PLANE)
    assert (report.named_pairs, report.unpaired, report.inconsistent) == (4, 1, 0)
    assert rig.num_joints == 12


def test_a_tree_that_joins_the_middle_through_one_side_is_rebuilt_mirror_consistent() -> None:
    """Distance-only MST: both legs hang from the lower body joint, and the upper one is then reached through
    whichever leg comes first - a lopsided tree although the points are symmetric."""
    keypoints = np.array([[0.0, 0.0, 0.0], [0.0, -0.15, 0.0], [0.1, -0.1, 0.0], [-0.1, -0.1, 0.0]])
    skeleton = build_skeleton(keypoints, np.ones((4, 4)), merge_fraction=0.0, root=1)
    assert mirror_report(skeleton.rig, X_PLANE).inconsistent == 1            # the upper joint hangs from a leg
    repaired = mirror_tree(skeleton, X_PLANE)
    assert mirror_report(repaired.rig, X_PLANE).inconsistent == 0
    assert repaired.rig.parents.tolist() == [1, -1, 1, 1]
    assert repaired.rig.names == skeleton.rig.names


def test_a_lopsided_tree_rooted_on_one_side_moves_its_root_onto_the_plane_and_hangs_a_lonely_joint_last() -> None:
    """A spine of two joints, a pair of hips and a tail tip on the left only: the MST's centre is a hip, so the
    rebuilt tree takes its root on the spine, and the joint with no mirror hangs from the mirrored tree."""
    keypoints = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.6], [0.2, 0.0, 0.5], [-0.2, 0.0, 0.5], [0.45, 0.0, 0.45],
                          [0.7, 0.0, 0.4]])
    adjacency = np.zeros((6, 6))
    for a, b in ((0, 2), (2, 1), (1, 3), (2, 4), (4, 5)):                      # the middle reached through a hip
        adjacency[a, b] = adjacency[b, a] = 1.0
    skeleton = build_skeleton(keypoints, adjacency, merge_fraction=0.0)
    assert skeleton.rig.root == 2                                              # the left hip: off the plane
    rebuilt = mirror_tree(skeleton, X_PLANE)
    rig = rebuilt.rig
    assert rig.root in (0, 1) and rig.names[rig.root] == "root" and "joint_02" in rig.names
    assert rig.bone_names == tuple(f"bone_{j:02d}" for j in range(6) if j != rig.root)
    report = mirror_report(rig, X_PLANE)
    assert (report.pairs, report.unpaired, report.inconsistent) == (1, 2, 0)
    assert rig.parents[2] != 4 and rig.parents[3] != 4                         # no hip hangs from the lonely tail


def test_root_and_floor_root_keep_their_names() -> None:
    keypoints, adjacency = noisy_legs()
    symmetric, weights, _ = symmetrise_keypoints(keypoints, adjacency, X_PLANE, object_size=2.0)
    rig = mirror_skeleton(build_skeleton(symmetric, weights, object_size=2.0), X_PLANE).rig
    grounded = add_floor_root(rig, np.zeros(3))
    assert "root" in grounded.names and GROUND_JOINT in grounded.names and ROOT_BONE in grounded.bone_names
    assert len(named_pairs(grounded.names)) == 3


def test_bad_settings_are_refused_by_name() -> None:
    keypoints, adjacency = noisy_legs()
    with pytest.raises(KeyDiffError, match="pair"):
        symmetrise_keypoints(keypoints, adjacency, X_PLANE, object_size=2.0, pair=-1.0)
    with pytest.raises(KeyDiffError, match="adjacency"):
        symmetrise_keypoints(keypoints, adjacency[:3], X_PLANE, object_size=2.0)
    with pytest.raises(KeyDiffError, match="tolerance"):
        detect_mirror_plane(*_canonical(two_legged()), tolerance=float("nan"))
    with pytest.raises(KeyDiffError, match="faces"):
        detect_mirror_plane(np.zeros((4, 3)), np.zeros((0, 3), np.int64))


def test_symmetry_off_gives_the_plain_mst_rig_as_before(tmp_path: Path) -> None:
    figure = two_legged()
    figure.export(tmp_path / "figure.ply")
    bundle = rig_mesh(tmp_path / "figure.ply", tmp_path / "plain", RigMeshOptions(symmetry=False))
    rig = rig_from_document(doc := read_rig_document(bundle))
    assert doc["settings"]["symmetry"] is False and doc["settings"]["mirror"] is None

    mesh = load_mesh(tmp_path / "figure.ply")
    to_canonical = canonical_transform(mesh.vertices)
    canonical = mesh.transformed(to_canonical.matrix)
    keypoints, adjacency = geometry_keypoints(canonical)
    size = float(np.linalg.norm(np.ptp(canonical.vertices, axis=0)))
    expected = add_floor_root(build_skeleton(keypoints, adjacency, object_size=size).rig,
                              ground_point(canonical.vertices, to_canonical.apply(np.zeros(3))[0]))
    assert rig.names == expected.names and rig.bone_names == expected.bone_names
    np.testing.assert_array_equal(rig.parents, expected.parents)
    np.testing.assert_allclose(rig.joints, to_canonical.apply_inverse(expected.joints), atol=1e-9)


@pytest.mark.skipif(not shared_rig_files(), reason="../shared/data/rigs is not beside this checkout")
def test_rig_mesh_gives_a_real_knight_a_mirror_rig_whose_names_pair_up(tmp_path: Path) -> None:
    knight = [p for p in shared_rig_files() if p.stem == "single_knight_pack_KnightCharacter"]
    if not knight:
        pytest.skip("the knight is not in ../shared/data/rigs")
    bundle = rig_mesh(knight[0], tmp_path / "knight", RigMeshOptions())
    doc = read_rig_document(bundle)
    rig = rig_from_document(doc)
    mirror = doc["settings"]["mirror"]
    assert doc["settings"]["symmetry"] is True and mirror["plane"] == "x"
    assert mirror["offset"] == 0.0                           # the object's own X = 0, where Blender mirrors
    plane = MirrorPlane(axis=0, offset=mirror["offset"], excess=mirror["excess"])
    pairs = named_pairs(rig.names)
    assert len(pairs) >= 8                                   # legs, arms, hands, feet at least
    sided = [n for n in rig.names if n.endswith((".L", ".R"))]
    assert len(sided) == 2 * len(pairs)                      # every sided name has its partner
    np.testing.assert_allclose(plane.reflect(rig.joints[pairs[:, 0]]), rig.joints[pairs[:, 1]], atol=1e-6)
    assert all(rig.joints[left, 0] > mirror["offset"] for left, _ in pairs)
    assert len(named_pairs(rig.bone_names)) == len(pairs)
    assert mirror_report(rig, plane, tolerance=1e-6).inconsistent == 0
    assert "ground" in rig.names and "root" in rig.bone_names


def _canonical(shape: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    mesh = as_mesh(shape)
    canonical = mesh.transformed(canonical_transform(mesh.vertices).matrix)
    return canonical.vertices, canonical.faces
