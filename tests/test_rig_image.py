"""rig: photo -> SV3D (tiny random model) -> keypoints (tiny untrained network) -> frosting (tiny preset) -> bundle.
The output is meaningless; the plumbing is the real one a user runs with full-size weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.errors import KeyDiffError
from backend.export.bundle import read_bundle_weights, read_rig_document, rig_from_document
from backend.pipeline.assemble import SkinningOptions
from backend.pipeline.rig_image import RigImageOptions, rig_image
from backend.views.render import has_embree
from backend.views.sv3d_models import tiny_sv3d_models

from test_rig_mesh_network import mobilenet_available, tiny_checkpoint


def photo(path: Path) -> Path:
    yy, xx = np.mgrid[:96, :96]
    rgba = np.zeros((96, 96, 4), np.uint8)
    body = ((yy - 48) / 40) ** 2 + ((xx - 48) / 18) ** 2 < 1
    rgba[body] = (200, 90, 40, 255)
    Image.fromarray(rgba).save(path)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not (has_embree() and mobilenet_available()), reason="needs embreex and the MobileNetV2 wheel")
def test_rig_runs_every_stage_and_writes_a_full_bundle(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    options = RigImageOptions(checkpoint=str(tiny_checkpoint(tmp_path / "kp.pt")), preset="tiny", steps=2,
                              device="cpu", skinning=SkinningOptions("eq9"))
    stages: list[str] = []

    class Recorder:
        def stage(self, name: str, fraction: float = 0.0, message: str = "") -> None:
            if not stages or stages[-1] != name:
                stages.append(name)

    bundle = rig_image(photo(tmp_path / "fox.png"), tmp_path / "out", options, Recorder(),
                       sv3d_models=tiny_sv3d_models(seed=0, num_frames=21))
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["binding.npz", "gaussians.ply", "mesh.glb", "preview.png", "rig.json", "rigged.glb", "views",
                     "weights.npz"]
    assert len(list((bundle / "views").glob("[0-9][0-9][0-9].png"))) == 21
    rig = rig_from_document(read_rig_document(bundle))
    assert rig.num_bones >= 1
    assert np.allclose(read_bundle_weights(bundle).weights.sum(axis=1), 1.0, atol=1e-5)
    for stage in ("preprocess", "denoise", "keypoints", "3dgs", "mesh", "skeleton", "skinning", "export"):
        assert stage in stages, f"stage {stage} never reported: {stages}"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rig_without_a_checkpoint_fails_before_any_diffusion(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("backend.pipeline.keypoint_source.SHIPPED_CHECKPOINT", tmp_path / "absent.pt")
    with pytest.raises(KeyDiffError, match="no keypoint checkpoint") as info:
        rig_image(photo(tmp_path / "fox.png"), tmp_path / "out", RigImageOptions(device="cpu"))
    assert info.value.code == "missing_weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fox.png"]


@pytest.mark.slow
@pytest.mark.skipif(not has_embree(), reason="needs embreex")
def test_rig_with_geometry_keypoints_needs_no_checkpoint_and_adds_a_floor_root(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("backend.pipeline.keypoint_source.SHIPPED_CHECKPOINT", tmp_path / "absent.pt")
    torch.set_num_threads(1)
    options = RigImageOptions(keypoints="geometry", preset="tiny", steps=2, device="cpu")
    bundle = rig_image(photo(tmp_path / "fox.png"), tmp_path / "out", options,
                       sv3d_models=tiny_sv3d_models(seed=0, num_frames=21))
    doc = read_rig_document(bundle)
    rig = rig_from_document(doc)
    assert doc["settings"]["keypoints"] == "geometry"
    assert "ground" in rig.names and rig.num_bones >= 2
    assert np.allclose(read_bundle_weights(bundle).weights.sum(axis=1), 1.0, atol=1e-5)


def test_rig_refuses_an_unknown_keypoint_source_by_name() -> None:
    with pytest.raises(KeyDiffError, match="--keypoints") as info:
        RigImageOptions(keypoints="magic")
    assert info.value.code == "invalid_argument"
