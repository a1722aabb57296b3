"""The one camera convention: orbit placement, projection round-trips, exports to gsplat and Blender."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from backend import cameras as cam
from backend.cameras import (
    AZIMUTH_SENSE,
    INPUT_FRAME,
    Camera,
    CanonicalTransform,
    canonical_transform,
    from_blender_camera_matrix,
    look_at_camera,
    orbit_azimuths_deg,
    orbit_cameras,
    pixel_rays,
    project,
    projection_matrix,
    stack_cameras,
    to_blender_camera,
    to_blender_camera_matrix,
    to_gsplat_viewmat,
    triangulate,
    unproject,
)
from backend.errors import KeyDiffError


@pytest.fixture(scope="module")
def orbit() -> list[Camera]:
    return orbit_cameras()


def test_orbit_has_21_frames_of_the_requested_size(orbit):
    assert len(orbit) == 21
    assert all(c.width == c.height == 576 for c in orbit)
    assert orbit_cameras(image_size=128, frames=[20, 3])[1].width == 128


def test_point_projected_into_all_21_views_triangulates_back(orbit):
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.6, 0.6, size=(50, 3))
    pixels = np.stack([project(points, c)[0] for c in orbit])       # [21, 50, 2]
    assert np.abs(triangulate(pixels, orbit) - points).max() < 1e-5


def test_triangulation_ignores_zero_weight_views(orbit):
    points = np.array([[0.1, -0.2, 0.3]])
    pixels = np.stack([project(points, c)[0] for c in orbit])
    pixels[5:] += 40.0                                                # corrupt all but 5 views...
    weights = np.zeros((21, 1))
    weights[:5] = 1.0                                                 # ...and drop them
    assert np.abs(triangulate(pixels, orbit, weights) - points).max() < 1e-5


def test_input_frame_looks_from_minus_y_at_the_elevation(orbit):
    center = orbit[INPUT_FRAME].center
    assert INPUT_FRAME == 20
    assert abs(center[0]) < 1e-9 and center[1] < 0 and center[2] > 0
    assert math.degrees(math.atan2(center[2], math.hypot(center[0], center[1]))) == pytest.approx(10.0)


def test_every_orbit_camera_looks_at_the_origin_from_the_radius(orbit):
    for c in orbit:
        assert np.linalg.norm(c.center) == pytest.approx(2.0)
        assert np.allclose(c.forward, -c.center / np.linalg.norm(c.center))
        pixel, depth = project(np.zeros((1, 3)), c)
        assert np.allclose(pixel, [[288.0, 288.0]]) and depth[0] == pytest.approx(2.0)


def test_world_up_points_up_in_every_image(orbit):
    for c in orbit:
        (below, above), _ = project(np.array([[0, 0, 0.0], [0, 0, 0.3]]), c)
        assert above[1] < below[1]                                    # image v grows downwards


def test_frame_azimuths_follow_sv3d_formula_and_the_sense_constant(orbit):
    expected = np.array([360.0 / 21 * (i + 1) for i in range(20)] + [0.0])
    assert np.allclose(orbit_azimuths_deg(), expected)
    for c, az in zip(orbit, expected):
        x, y, _ = c.center
        # azimuth measured from -Y, positive towards +X when AZIMUTH_SENSE = +1
        measured = math.degrees(math.atan2(AZIMUTH_SENSE * x, -y)) % 360.0
        assert measured == pytest.approx(az, abs=1e-9) or abs(measured - az) == pytest.approx(360.0)
    # frame 4 (azimuth ~85.7 deg) is on the side the sense constant names
    assert np.sign(orbit[4].center[0]) == AZIMUTH_SENSE


def test_orbit_sense_constant_flips_the_walk(monkeypatch):
    monkeypatch.setattr(cam, "AZIMUTH_SENSE", -AZIMUTH_SENSE)
    assert np.sign(orbit_cameras(frames=[4])[0].center[0]) == -AZIMUTH_SENSE


def test_fov_is_33_8_degrees_across_the_square_image(orbit):
    c = orbit[0]
    assert c.fov_deg == pytest.approx(33.8)
    assert c.K[0, 0] == pytest.approx(288.0 / math.tan(math.radians(16.9)))
    assert np.allclose(c.K[:2, 2], [288.0, 288.0])


def test_project_unproject_round_trip(orbit):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(100, 3))
    for c in orbit[::5]:
        pixels, depth = project(points, c)
        assert np.allclose(unproject(pixels, depth, c), points, atol=1e-10)


def test_projection_matrix_agrees_with_project(orbit):
    points = np.array([[0.2, 0.1, -0.3], [0.0, 0.5, 0.4]])
    P = projection_matrix(orbit[7])
    h = np.concatenate([points, np.ones((2, 1))], axis=1) @ P.T
    assert np.allclose(h[:, :2] / h[:, 2:], project(points, orbit[7])[0])


def test_pixel_rays_pass_through_pixel_centres(orbit):
    c = orbit_cameras(image_size=16, frames=[3])[0]
    origin, dirs = pixel_rays(c)
    point = origin + 1.7 * dirs[5, 9]
    pixel, _ = project(point[None], c)
    assert np.allclose(pixel, [[9.5, 5.5]])


def test_gsplat_viewmat_equals_R_t(orbit):
    c = orbit[3]
    V = to_gsplat_viewmat(c)
    assert np.allclose(V[:3, :3], c.R) and np.allclose(V[:3, 3], c.t) and np.allclose(V[3], [0, 0, 0, 1])
    batch = stack_cameras(orbit)
    assert batch.R.shape == (21, 3, 3) and batch.projection.shape == (21, 3, 4)
    assert np.allclose(batch.viewmats[3], V) and np.allclose(batch.centers[3], c.center)


def test_blender_matrix_round_trip(orbit):
    for c in orbit[::4]:
        settings = to_blender_camera(c)
        back = from_blender_camera_matrix(settings.matrix_world, settings.lens_mm, settings.sensor_width_mm,
                                          c.width, c.height)
        assert np.allclose(back.R, c.R) and np.allclose(back.t, c.t) and np.allclose(back.K, c.K)


def test_blender_camera_looks_down_its_local_minus_z_with_y_up(orbit):
    c = orbit[INPUT_FRAME]
    M = to_blender_camera_matrix(c)
    assert np.allclose(-M[:3, 2], c.forward)                          # local -Z is the viewing direction
    assert M[:3, 1] @ np.array([0, 0, 1.0]) > 0.9                     # local +Y is roughly world up
    assert np.allclose(M[:3, 3], c.center)
    # Blender's default 36 mm sensor: lens = 18 / tan(fov / 2)
    assert to_blender_camera(c).lens_mm == pytest.approx(18.0 / math.tan(math.radians(16.9)))


def test_blender_matrix_with_scale_is_accepted_and_mirror_rejected(orbit):
    M = to_blender_camera_matrix(orbit[2])
    scaled = M.copy()
    scaled[:3, :3] *= 3.0
    assert np.allclose(from_blender_camera_matrix(scaled, 50.0).R, from_blender_camera_matrix(M, 50.0).R)
    mirrored = M.copy()
    mirrored[:3, 0] *= -1
    with pytest.raises(KeyDiffError) as err:
        from_blender_camera_matrix(mirrored)
    assert err.value.code == "invalid_argument"


def test_look_at_from_minus_y_equals_input_frame(orbit):
    c20 = orbit[INPUT_FRAME]
    other = look_at_camera(c20.center, (0, 0, 0), (0, 0, 1), 33.8, 576)
    assert np.allclose(other.R, c20.R) and np.allclose(other.t, c20.t) and np.allclose(other.K, c20.K)


def test_camera_json_round_trip(orbit):
    data = json.loads(json.dumps(orbit[9].to_dict()))
    back = Camera.from_dict(data)
    assert np.allclose(back.R, orbit[9].R) and back.width == 576


def test_canonical_transform_fits_cube_touching_longest_side_and_inverts():
    rng = np.random.default_rng(2)
    vertices = rng.normal(size=(500, 3)) * [3.0, 0.5, 1.2] + [10.0, -4.0, 7.0]
    transform = canonical_transform(vertices, half_size=0.6, fit="box")
    canon = transform.apply(vertices)
    lo, hi = canon.min(axis=0), canon.max(axis=0)
    assert np.all(lo >= -0.6 - 1e-12) and np.all(hi <= 0.6 + 1e-12)
    assert lo[0] == pytest.approx(-0.6) and hi[0] == pytest.approx(0.6)   # longest side touches the cube
    assert np.allclose((lo + hi) / 2, 0.0)                                # bounding box centred
    assert np.allclose(transform.apply_inverse(canon), vertices)
    stored = CanonicalTransform.from_list(json.loads(json.dumps(transform.to_list())))
    assert np.allclose(stored.matrix, transform.matrix)
    assert np.allclose(stored.inverse @ stored.matrix, np.eye(4))


def test_canonical_transform_margin_leaves_room():
    vertices = np.array([[0, 0, 0], [2.0, 1.0, 0.5]])
    canon = canonical_transform(vertices, half_size=0.6, margin=0.1, fit="box").apply(vertices)
    assert np.abs(canon).max() == pytest.approx(0.54)


def test_default_canonical_object_is_seen_whole_in_every_orbit_view():
    rng = np.random.default_rng(5)
    vertices = rng.normal(size=(2000, 3)) * [0.3, 2.0, 0.7] + [4.0, 1.0, -2.0]   # long and thin, off-centre
    canon = canonical_transform(vertices).apply(vertices)
    assert np.abs(canon).max() <= 0.6                                              # inside the keypoint cube
    assert np.linalg.norm(canon, axis=1).max() == pytest.approx(0.55)
    for camera in orbit_cameras(image_size=256):
        pixels, depth = project(canon, camera)
        assert (depth > 0).all()
        assert (pixels >= 0).all() and (pixels <= 256).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda: canonical_transform(np.ones((4, 3)) * np.arange(4)[:, None], fit="cube"),
        lambda: project(np.array([[0.0, np.nan, 0.0]]), orbit_cameras(frames=[0])[0]),
        lambda: project(np.zeros((4, 2)), orbit_cameras(frames=[0])[0]),
        lambda: unproject(np.zeros((3, 2)), np.ones(2), orbit_cameras(frames=[0])[0]),
        lambda: triangulate(np.zeros((3, 5, 2)), orbit_cameras(frames=[0, 1])),
        lambda: triangulate(np.zeros((2, 5, 2)), orbit_cameras(frames=[0, 1]), weights=np.eye(2, 5)),
        lambda: canonical_transform(np.full((3, 3), np.inf)),
        lambda: canonical_transform(np.ones((3, 3))),
        lambda: canonical_transform(np.zeros((3, 4))),
        lambda: orbit_cameras(frames=[21]),
        lambda: orbit_cameras(radius=-1.0),
        lambda: look_at_camera((0, 0, 1), (0, 0, 0), up=(0, 0, 1)),
        lambda: look_at_camera(np.zeros((2, 3))),
        lambda: Camera(R=np.diag([1.0, 1.0, -1.0]), t=np.zeros(3), K=np.eye(3), width=4, height=4),
        lambda: Camera.from_dict({"R": np.eye(3).tolist()}),
    ],
    ids=["unknown_fit", "nan_points", "points_not_3d", "depth_count", "views_mismatch", "one_view_only", "inf_vertices",
         "flat_vertices", "vertices_not_3d", "frame_out_of_range", "negative_radius", "up_parallel",
         "eye_not_vector", "mirror_R", "incomplete_dict"],
)
def test_bad_input_raises_invalid_argument(call):
    with pytest.raises(KeyDiffError) as err:
        call()
    assert err.value.code == "invalid_argument"
