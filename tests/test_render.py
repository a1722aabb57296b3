"""The CPU orbit renderer and the ViewSet folder format."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.cameras import INPUT_FRAME, look_at_camera, orbit_cameras, project
from backend.errors import KeyDiffError
from backend.mesh import Mesh
from backend.views.render import RenderSettings, has_embree, render_orbit, render_views
from backend.views.viewset import ViewSet, contact_sheet

pytestmark = pytest.mark.skipif(not has_embree(), reason="embreex (the ray engine) is not installed")

SIZE = 128
RADIUS = 0.5


def _mesh(tm: trimesh.Trimesh, **kw) -> Mesh:
    return Mesh(vertices=np.asarray(tm.vertices, dtype=np.float64), faces=np.asarray(tm.faces, dtype=np.int64),
                **kw)


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    return _mesh(trimesh.creation.icosphere(subdivisions=5, radius=RADIUS))


@pytest.fixture(scope="module")
def sphere_views(sphere) -> ViewSet:
    return render_orbit(sphere, image_size=SIZE)


def test_sphere_renders_to_disc_of_true_perspective_area_in_all_21_views(sphere_views):
    assert len(sphere_views) == 21 and sphere_views.frames.tolist() == list(range(21))
    for mask, cam in zip(sphere_views.masks, sphere_views.cameras):
        distance = np.linalg.norm(cam.center)
        # the silhouette cone of a sphere has half-angle asin(r / d): a disc of radius f * tan(that)
        disc_radius = cam.K[0, 0] * math.tan(math.asin(RADIUS / distance))
        assert mask.sum() == pytest.approx(math.pi * disc_radius**2, rel=0.02)
        rows, cols = np.nonzero(mask)
        assert cols.mean() + 0.5 == pytest.approx(SIZE / 2, abs=0.5)
        assert rows.mean() + 0.5 == pytest.approx(SIZE / 2, abs=0.5)


def test_depth_at_disc_centre_is_camera_distance_minus_radius(sphere_views):
    c = SIZE // 2
    for depth, cam in zip(sphere_views.depths, sphere_views.cameras):
        assert depth[c - 1:c + 1, c - 1:c + 1] == pytest.approx(np.linalg.norm(cam.center) - RADIUS, abs=1e-3)
    assert (sphere_views.depths[~sphere_views.masks] == 0).all()


def test_background_is_white_and_object_is_shaded(sphere_views):
    assert (sphere_views.images[~sphere_views.masks] == 255).all()
    assert (sphere_views.images[sphere_views.masks] < 255).any(axis=-1).all()


def test_points_inside_a_mesh_project_inside_its_masks():
    torus = trimesh.creation.torus(major_radius=0.4, minor_radius=0.12)
    torus.apply_transform(trimesh.transformations.rotation_matrix(0.7, [1, 0.3, 0]))
    views = render_orbit(_mesh(torus), image_size=SIZE)
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 40)
    radial = 0.4 + rng.uniform(-0.08, 0.08, 40)
    joints = np.stack([radial * np.cos(angle), radial * np.sin(angle), rng.uniform(-0.05, 0.05, 40)], axis=1)
    joints = trimesh.transform_points(joints, trimesh.transformations.rotation_matrix(0.7, [1, 0.3, 0]))
    assert torus.contains(joints).all()
    for mask, cam in zip(views.masks, views.cameras):
        pixels, depth = project(joints, cam)
        cols, rows = np.floor(pixels).astype(int).T
        assert (depth > 0).all() and mask[rows, cols].all()


def test_rendering_is_deterministic(sphere):
    a = render_orbit(sphere, image_size=64, frames=[3, 11])
    b = render_orbit(sphere, image_size=64, frames=[3, 11])
    assert np.array_equal(a.images, b.images) and np.array_equal(a.depths, b.depths)


def _half_coloured_box() -> Mesh:
    box = trimesh.creation.box(extents=(0.8, 0.5, 0.9)).subdivide().subdivide()
    vertices = np.asarray(box.vertices)
    red, blue = np.array([0.8, 0.05, 0.05, 1.0]), np.array([0.05, 0.05, 0.8, 1.0])
    colors = np.where(vertices[:, :1] > 0, blue, red).astype(np.float32)    # +X blue, -X red
    return _mesh(box, colors=colors)


def test_frame_20_matches_look_at_camera_from_minus_y():
    mesh = _half_coloured_box()
    orbit = render_orbit(mesh, image_size=SIZE, frames=[INPUT_FRAME])
    e = math.radians(10.0)
    eye = (0.0, -2.0 * math.cos(e), 2.0 * math.sin(e))
    direct = render_views(mesh, [look_at_camera(eye, (0, 0, 0), (0, 0, 1), 33.8, SIZE)])
    assert np.array_equal(orbit.images, direct.images) and np.array_equal(orbit.masks, direct.masks)
    assert orbit.frames.tolist() == [INPUT_FRAME] and direct.frames.tolist() == [-1]


def test_vertex_coloured_mesh_shows_its_colours_with_plus_x_on_the_right():
    views = render_orbit(_half_coloured_box(), image_size=SIZE, frames=[INPUT_FRAME])
    image = views.images[0].astype(int)
    row = SIZE // 2
    # the front face (y = -0.25) is seen nearly head-on (10 deg elevation): ambient + diffuse = 1 shows about the
    # albedo itself, linear 0.8 -> sRGB 231 and 0.05 -> 63; -X (red) is on the image's left seen from -Y
    assert image[row, SIZE // 4] == pytest.approx([231, 63, 63], abs=8)
    assert image[row, 3 * SIZE // 4] == pytest.approx([63, 63, 231], abs=8)


def _textured_quad() -> Mesh:
    """A 0.8 m square facing -Y, uv (0, 0) at its top-left corner as glTF expects."""
    vertices = np.array([[-0.4, 0, 0.4], [0.4, 0, 0.4], [0.4, 0, -0.4], [-0.4, 0, -0.4]])
    faces = np.array([[0, 2, 1], [0, 3, 2]])
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)
    texture = np.zeros((32, 32, 3), np.uint8)
    texture[:16, :16] = (255, 0, 0)      # top-left red
    texture[:16, 16:] = (0, 255, 0)      # top-right green
    texture[16:, :16] = (0, 0, 255)      # bottom-left blue
    texture[16:, 16:] = (255, 255, 0)    # bottom-right yellow
    return Mesh(vertices=vertices, faces=faces, uvs=uvs, texture=texture)


def test_textured_mesh_shows_its_texture_the_right_way_up():
    cam = look_at_camera((0, -2.0, 0), (0, 0, 0), (0, 0, 1), 33.8, SIZE)
    image = render_views(_textured_quad(), [cam]).images[0].astype(int)
    (tl, br), _ = project(np.array([[-0.2, 0, 0.2], [0.2, 0, -0.2]]), cam)
    (c0, r0), (c1, r1) = np.floor(tl).astype(int), np.floor(br).astype(int)
    assert image[r0, c0] == pytest.approx([255, 0, 0], abs=2)
    assert image[r0, c1] == pytest.approx([0, 255, 0], abs=2)
    assert image[r1, c0] == pytest.approx([0, 0, 255], abs=2)
    assert image[r1, c1] == pytest.approx([255, 255, 0], abs=2)


def test_supersampling_softens_edges_but_keeps_the_silhouette(sphere):
    sharp = render_orbit(sphere, image_size=64, frames=[0])
    smooth = render_orbit(sphere, image_size=64, frames=[0], settings=RenderSettings(supersample=3))
    assert abs(int(smooth.masks.sum()) - int(sharp.masks.sum())) < 0.02 * sharp.masks.sum()
    grey_levels = lambda v: len(np.unique(v.images[0][~v.masks[0]]))  # noqa: E731
    assert grey_levels(smooth) > grey_levels(sharp)    # partially covered pixels blend into the background


def test_viewset_save_load_round_trip(tmp_path: Path, sphere):
    views = render_orbit(sphere, image_size=32, frames=[20, 0, 7])
    folder = views.save(tmp_path / "views")
    assert sorted(p.name for p in folder.iterdir())[:3] == ["000.png", "000_mask.png", "001.png"]
    back = ViewSet.load(folder)
    assert np.array_equal(back.images, views.images) and np.array_equal(back.masks, views.masks)
    assert np.array_equal(back.depths, views.depths) and back.frames.tolist() == [20, 0, 7]
    assert np.allclose(back.cameras[1].R, views.cameras[1].R)
    views.subset([2]).save(folder)                       # replacing an existing folder
    assert len(ViewSet.load(folder)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["views"]   # no temp folders left behind


def test_contact_sheet_tiles_views_in_order(sphere):
    views = render_orbit(sphere, image_size=32, frames=[20, 0, 7])
    sheet = contact_sheet(views, columns=2, labels=False)
    assert sheet.shape == (64, 64, 3)
    assert np.array_equal(sheet[:32, 32:], views.images[1]) and np.array_equal(sheet[32:, :32], views.images[2])
    assert (sheet[32:, 32:] == 255).all()                 # the empty slot stays white


def test_loading_a_broken_views_folder_names_the_file(tmp_path: Path):
    with pytest.raises(KeyDiffError) as err:
        ViewSet.load(tmp_path)
    assert err.value.code == "unreadable_file" and "cameras.json" in err.value.message


@pytest.mark.parametrize("size", [8, 4096])
def test_image_size_out_of_range_is_rejected(sphere, size):
    with pytest.raises(KeyDiffError) as err:
        render_views(sphere, orbit_cameras(image_size=size, frames=[0]))
    assert err.value.code == "invalid_argument"


def test_cameras_of_different_sizes_are_rejected(sphere):
    cameras = orbit_cameras(image_size=32, frames=[0]) + orbit_cameras(image_size=64, frames=[1])
    with pytest.raises(KeyDiffError) as err:
        render_views(sphere, cameras)
    assert err.value.code == "invalid_argument" and "(32, 32)" in err.value.message


def test_broken_mesh_is_rejected():
    bad = Mesh(vertices=np.array([[0, 0, np.nan], [1, 0, 0], [0, 1, 0]]), faces=np.array([[0, 1, 2]]))
    with pytest.raises(KeyDiffError) as err:
        render_orbit(bad, image_size=32, frames=[0])
    assert err.value.code == "invalid_mesh"


# Blender renders through a camera built by `to_blender_camera` must see what our renderer sees. bpy never
# enters the backend: it runs in a child process, either this interpreter (when it has bpy) or the one named by
# $BPY_PYTHON (reference/blender.md suggests a separate bpy venv).
_BLENDER_SCRIPT = r"""
import json, sys
import bpy, mathutils
import numpy as np
scene_path, out_path = sys.argv[-2:]
d = json.load(open(scene_path))
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
me = bpy.data.meshes.new("m"); me.from_pydata(d["vertices"], [], d["faces"]); me.update()
scene.collection.objects.link(bpy.data.objects.new("m", me))
camd = bpy.data.cameras.new("c"); cam = bpy.data.objects.new("c", camd); scene.collection.objects.link(cam)
scene.camera = cam
scene.render.engine = "CYCLES"; scene.cycles.device = "CPU"; scene.cycles.samples = 16
scene.cycles.use_denoising = False; scene.cycles.pixel_filter_type = "BOX"; scene.cycles.filter_width = 1.0
scene.render.film_transparent = True; scene.render.resolution_percentage = 100
masks = {}
for i, c in enumerate(d["cameras"]):
    cam.matrix_world = mathutils.Matrix(c["matrix_world"])
    camd.lens = c["lens_mm"]; camd.sensor_width = c["sensor_width_mm"]; camd.sensor_fit = "AUTO"
    scene.render.resolution_x = c["width"]; scene.render.resolution_y = c["height"]
    scene.render.filepath = out_path + f".{i}.png"
    bpy.ops.render.render(write_still=True)
    pixels = np.array(bpy.data.images.load(scene.render.filepath).pixels[:]).reshape(c["height"], c["width"], 4)
    masks[f"view{i}"] = pixels[::-1, :, 3] > 0.5          # Blender's pixel rows start at the bottom
np.savez(out_path, **masks)
"""


def _bpy_python() -> str | None:
    import importlib.util
    import os
    import sys

    if importlib.util.find_spec("bpy") is not None:
        return sys.executable
    return os.environ.get("BPY_PYTHON") or None


@pytest.mark.skipif(_bpy_python() is None, reason="no interpreter with bpy (install bpy or set $BPY_PYTHON)")
def test_blender_camera_sees_the_same_silhouette_as_our_renderer(tmp_path: Path):
    import json
    import subprocess

    from backend.cameras import to_blender_camera

    box = trimesh.creation.box(extents=(0.5, 0.3, 0.7))
    box.apply_translation((0.1, 0.05, 0.0))
    ball = trimesh.creation.icosphere(3, radius=0.18)
    ball.apply_translation((0.35, -0.2, 0.3))                 # makes the object chiral: a mirror would show
    mesh = _mesh(trimesh.util.concatenate([box, ball]))
    cameras = orbit_cameras(image_size=96, frames=[20, 4, 13])
    cameras.append(look_at_camera((0.5, -1.5, 0.8), (0.1, 0, 0.1), fov_deg=40, width=128, height=80))
    ours = [render_views(mesh, [c]).masks[0] for c in cameras]
    settings = [to_blender_camera(c) for c in cameras]
    scene = {"vertices": mesh.vertices.tolist(), "faces": mesh.faces.tolist(),
             "cameras": [{"matrix_world": s.matrix_world.tolist(), "lens_mm": s.lens_mm,
                          "sensor_width_mm": s.sensor_width_mm, "width": s.resolution_x,
                          "height": s.resolution_y} for s in settings]}
    (tmp_path / "scene.json").write_text(json.dumps(scene))
    (tmp_path / "render.py").write_text(_BLENDER_SCRIPT)
    out = tmp_path / "masks.npz"
    subprocess.run([_bpy_python(), str(tmp_path / "render.py"), str(tmp_path / "scene.json"), str(out)],
                   check=True, capture_output=True, timeout=300)
    with np.load(out) as blender:
        for i, mine in enumerate(ours):
            theirs = blender[f"view{i}"]
            assert theirs.shape == mine.shape
            assert (theirs & mine).sum() / (theirs | mine).sum() > 0.99
