"""A mirror-symmetric rig in Blender (bpy 5.0.1 wheel, headless): the `.L` / `.R` bones rig-mesh gives a symmetric
character are what Blender's own mirror tools pair up - name flipping finds every partner, the partners sit at
mirror images across the armature's X = 0, and Paste Pose Flipped turns the partner the mirrored way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA

pytest.importorskip("bpy", reason="the bpy wheel (bpy==5.0.1) is not installed")

from backend.pipeline.rig_mesh import RigMeshOptions, rig_mesh  # noqa: E402
from test_addon_blender import run_in_blender  # noqa: E402

KNIGHT = SHARED_DATA / "rigs" / "single_knight_pack_KnightCharacter.glb"


@pytest.mark.skipif(not KNIGHT.is_file(), reason="../shared/data/rigs has no knight")
def test_blender_pairs_every_sided_bone_of_a_rig_mesh_knight_and_pastes_poses_flipped(tmp_path: Path) -> None:
    bundle = rig_mesh(KNIGHT, tmp_path / "knight", RigMeshOptions())
    check = run_in_blender("check_mirror.py", str(bundle), home=tmp_path / "home")
    assert check["sided"] >= 16 and check["unpaired"] == []
    assert check["edit_mirror_x"]                                    # Edit mode's X-Axis Mirror is on
    assert check["mirror_error"] < 1e-5                              # Blender stores bones in float32
    w, x, y, z = check["left"]
    np.testing.assert_allclose(check["right"], [w, x, -y, -z], atol=1e-5)   # a turn mirrored across X
