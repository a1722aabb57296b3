"""The azimuth-sense self-check recovers the sense an orbit was really rendered with."""

from __future__ import annotations

import numpy as np
import pytest

from backend.cameras import AZIMUTH_SENSE, pixel_rays
from backend.views.orbit_check import check_orbit_sense, orbit_cameras_for_sense

# An object with no mirror symmetry: a body and three off-axis bumps (x, y, z, radius), metres.
LOPSIDED = np.array([[0.0, 0.0, 0.0, 0.3], [0.35, 0.1, 0.2, 0.15], [-0.1, -0.3, -0.3, 0.12], [0.1, 0.35, 0.3, 0.1]])
# Left-right symmetric like a character facing the input camera (mirror x -> -x), but not front-back.
FACING_FRONT = np.array([[0.0, 0.0, 0.0, 0.3], [0.3, 0.0, 0.0, 0.12], [-0.3, 0.0, 0.0, 0.12], [0.0, 0.35, 0.2, 0.1]])
ROUND = np.array([[0.0, 0.0, 0.0, 0.35]])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sphere_masks(spheres: np.ndarray, sense: int, size: int = 64) -> np.ndarray:
    """Exact silhouettes [21, S, S] of a union of spheres from the orbit turning with `sense`."""
    masks = []
    for camera in orbit_cameras_for_sense(sense, range(21), image_size=size, elevation_deg=10.0):
        origin, dirs = pixel_rays(camera)  # [3], [S, S, 3]
        to_centre = spheres[:, :3] - origin  # [K, 3]
        along = np.einsum("hwc,kc->hwk", dirs, to_centre)  # [S, S, K]
        closest = np.linalg.norm(to_centre[None, None] - along[..., None] * dirs[..., None, :], axis=-1)
        masks.append(((closest < spheres[:, 3]) & (along > 0)).any(axis=-1))
    return np.stack(masks)


@pytest.mark.parametrize("true_sense", [1, -1])
def test_the_sense_the_views_were_made_with_wins_by_a_clear_margin(true_sense):
    check = check_orbit_sense(sphere_masks(LOPSIDED, true_sense), list(range(21)), elevation_deg=10.0, grid=48, size=48)
    assert check.best_sense == true_sense
    assert check.mean_iou[true_sense] > 0.9 and check.margin > 0.1
    assert check.configured_loses == (true_sense != AZIMUTH_SENSE)
    if check.configured_loses:
        assert check.message().startswith("WARNING")
    assert check.to_dict()["best_sense"] == true_sense


@pytest.mark.parametrize("true_sense", [1, -1])
def test_a_left_right_symmetric_object_still_tells_the_senses_apart(true_sense):
    check = check_orbit_sense(sphere_masks(FACING_FRONT, true_sense), list(range(21)), elevation_deg=10.0, grid=48, size=48)
    assert check.best_sense == true_sense and check.margin > 0.03


def test_an_object_that_looks_the_same_mirrored_is_reported_inconclusive():
    check = check_orbit_sense(sphere_masks(ROUND, 1), list(range(21)), elevation_deg=10.0, grid=48, size=48)
    assert check.best_sense is None and not check.configured_loses
    assert "inconclusive" in check.message()
