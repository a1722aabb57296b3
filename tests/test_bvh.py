"""The BVH reader: every CMU clip we ship with reads completely, and forward kinematics gives a human."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import KeyDiffError
from training.synthetic.bvh import BVH_TO_WORLD, parse_bvh, read_bvh
from training.synthetic.retarget import CMU_INDEX, check_cmu_hierarchy

# Frame counts from ../shared/data/mocap/SOURCES.md; every clip has 31 joints and 96 channels.
EXPECTED_FRAMES = {
    "cmu_01_01.bvh": 2752, "cmu_01_14.bvh": 2339, "cmu_02_01.bvh": 344, "cmu_npybvh_example.bvh": 75,
    "cmu_scaled_131_01.bvh": 995, "cmu_scaled_131_02.bvh": 1248,
}
CMU_UNIT_M = 0.0254 / 0.45        # one CMU unit is 1/0.45 inch (CMU FAQ), for the unscaled clips

TWO_JOINTS = """HIERARCHY
ROOT A
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT B
  {
    OFFSET 0 2 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 30 90 0
"""


@pytest.fixture(scope="module")
def clips(shared_data):
    files = sorted((shared_data / "mocap").glob("*.bvh"))
    assert files, "../shared/data/mocap holds no .bvh files"
    return {path.name: read_bvh(path) for path in files}


def test_every_shipped_clip_reads_with_31_joints_and_its_documented_frame_count(clips) -> None:
    assert set(clips) == set(EXPECTED_FRAMES)
    for name, clip in clips.items():
        assert clip.num_joints == 31, name
        assert clip.num_frames == EXPECTED_FRAMES[name], name
        assert clip.motion.shape == (EXPECTED_FRAMES[name], 96), name
        assert clip.frame_time == pytest.approx(1 / 120, rel=1e-3), name
        check_cmu_hierarchy(clip)          # all share the cgspeed hierarchy, whatever their joint names


def test_forward_kinematics_gives_plausible_human_proportions(clips) -> None:
    for name, clip in clips.items():
        unit = 1.0 if "scaled" in name else CMU_UNIT_M
        rest = clip.rest_positions() * unit                                  # [N, 3] metres, Z up
        height = np.ptp(rest[:, 2])
        assert 1.3 < height < 2.0, (name, height)
        head, hips = rest[CMU_INDEX["Head_End"]], rest[CMU_INDEX["Hips"]]
        foot = rest[CMU_INDEX["LeftFoot"]]
        assert head[2] > hips[2] > foot[2], name                             # upright: head over hips over feet
        assert 0.4 < (hips[2] - rest[:, 2].min()) / height < 0.65, name      # legs about half the height
        left_leg = np.linalg.norm(rest[CMU_INDEX["LeftLeg"]] - rest[CMU_INDEX["LeftUpLeg"]])
        right_leg = np.linalg.norm(rest[CMU_INDEX["RightLeg"]] - rest[CMU_INDEX["RightUpLeg"]])
        assert left_leg == pytest.approx(right_leg, rel=0.1), name           # left and right thighs match
        assert rest[CMU_INDEX["LeftUpLeg"], 0] > 0 > rest[CMU_INDEX["RightUpLeg"], 0], name  # left at +X
        positions, rotations = clip.forward_kinematics(np.arange(0, clip.num_frames, 50))
        bones = np.linalg.norm(positions[:, CMU_INDEX["LeftLeg"]] - positions[:, CMU_INDEX["LeftUpLeg"]], axis=1)
        np.testing.assert_allclose(bones * unit, left_leg, rtol=1e-9)         # FK keeps bone lengths
        np.testing.assert_allclose(rotations @ np.swapaxes(rotations, -1, -2), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-9)
        # the subject stands upright most of the time: head above hips in 90 % of sampled frames
        upright = positions[:, CMU_INDEX["Head"], 2] > positions[:, CMU_INDEX["Hips"], 2]
        assert upright.mean() > 0.9, name


def test_forward_kinematics_follows_channel_order_and_root_translation() -> None:
    clip = parse_bvh(TWO_JOINTS)
    assert clip.names == ("A", "B", "B_End")
    assert clip.num_joints == 2 and clip.is_end_site.tolist() == [False, False, True]
    positions, _ = clip.forward_kinematics()
    bvh_positions = positions @ BVH_TO_WORLD                                   # back to BVH axes
    np.testing.assert_allclose(bvh_positions[0], [[0, 0, 0], [0, 2, 0], [0, 3, 0]], atol=1e-12)
    # frame 1: root moved to (1, 2, 3) and turned 90 deg about Z, so B's offset (0, 2, 0) points along -X.
    # B's channels are Z X Y: its rotation is Rz(30) Rx(90), applied inside the root's Rz(90).
    rz = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    rx = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])
    c, h = np.cos(np.radians(30)), np.sin(np.radians(30))
    rz30 = np.array([[c, -h, 0], [h, c, 0], [0, 0, 1.0]])
    expected_b = np.array([1, 2, 3]) + rz @ [0, 2, 0]
    expected_end = expected_b + rz @ rz30 @ rx @ [0, 1, 0]
    np.testing.assert_allclose(bvh_positions[1], [[1, 2, 3], expected_b, expected_end], atol=1e-12)


@pytest.mark.parametrize("text, fragment", [
    (TWO_JOINTS.replace("1 2 3 90 0 0 30 90 0\n", "1 2 3 90 0 0 30 90\n"), "values"),
    (TWO_JOINTS.replace("CHANNELS 3 Zrotation", "CHANNELS 3 Wrotation"), "unknown channel"),
    (TWO_JOINTS.replace("HIERARCHY", "HIERACHY"), "HIERARCHY"),
    (TWO_JOINTS.replace("0 0 0 0 0 0 0 0 0", "0 0 0 0 x 0 0 0 0"), "non-number"),
    (TWO_JOINTS.rsplit("}", 1)[0] + "MOTION\nFrames: 0\n", "unclosed"),
])
def test_malformed_bvh_raises_unreadable_file_naming_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(KeyDiffError) as err:
        parse_bvh(text, source="bad.bvh")
    assert err.value.code == "unreadable_file"
    assert fragment in err.value.message and "bad.bvh" in err.value.message


def test_missing_bvh_file_is_unreadable_file(tmp_path) -> None:
    with pytest.raises(KeyDiffError) as err:
        read_bvh(tmp_path / "nope.bvh")
    assert err.value.code == "unreadable_file"
