"""Inside bpy: import a bundle with the add-on, pose it, render rest | posed side by side (docs/images).

    python render_posed.py BUNDLE_DIR OUT.png [--engine CYCLES|BLENDER_WORKBENCH] [--size 384] [--samples 32]
Armatures are not rendered; the picture shows the mesh deformed by the imported Armature and weights.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np

import addon_env
import bpy
from mathutils import Euler, Vector


def frame_camera(scene, mesh_obj, azimuth_deg: float = -35.0, elevation_deg: float = 12.0) -> None:
    corners = np.array([mesh_obj.matrix_world @ Vector(c) for c in mesh_obj.bound_box])
    centre, radius = corners.mean(axis=0), float(np.linalg.norm(corners.max(0) - corners.min(0))) / 2
    camera_data = bpy.data.cameras.new("Camera")
    camera_data.lens = 50
    camera = bpy.data.objects.new("Camera", camera_data)
    scene.collection.objects.link(camera)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    distance = radius / math.tan(camera_data.angle / 2) * 0.85
    direction = Vector((math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)))
    camera.location = Vector(centre) + distance * direction
    camera.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = Euler((math.radians(50), 0, math.radians(-30)))
    scene.collection.objects.link(sun)
    world = bpy.data.worlds.new("World")
    world.color = (0.8, 0.8, 0.82)
    scene.world = world
    if world.node_tree is not None:
        background = world.node_tree.nodes.get("Background")
        if background is not None:
            background.inputs["Color"].default_value = (0.75, 0.77, 0.8, 1.0)
            background.inputs["Strength"].default_value = 0.8


def pose(armature, mesh_obj, count: int = 4, degrees: float = 40.0) -> list[str]:
    """Bend the bones that carry the most vertices (deterministic, visible)."""
    weighted = {}
    for vertex in mesh_obj.data.vertices:
        for element in vertex.groups:
            name = mesh_obj.vertex_groups[element.group].name
            weighted[name] = weighted.get(name, 0) + (element.weight > 0.5)
    chosen = sorted((n for n in weighted if armature.data.bones[n].parent is not None),
                    key=lambda n: -weighted[n])[:count]
    for i, name in enumerate(chosen):
        pose_bone = armature.pose.bones[name]
        pose_bone.rotation_mode = "XYZ"
        pose_bone.rotation_euler = (math.radians(degrees * (-1) ** i), 0.0, math.radians(degrees / 2))
    bpy.context.view_layer.update()
    return chosen


def render(scene, path: Path) -> np.ndarray:
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.empty(image.size[0] * image.size[1] * 4, np.float32)
    image.pixels.foreach_get(pixels)
    shape = (image.size[1], image.size[0], 4)
    bpy.data.images.remove(image)
    return pixels.reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--engine", default="CYCLES")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args()
    addon_env.fresh_scene()
    addon_env.enable_from_source()
    bpy.ops.import_scene.keydiff3d_bundle(filepath=str(args.bundle / "rig.json"))
    armature = bpy.context.active_object
    mesh_obj = next(o for o in armature.children if o.type == "MESH")
    scene = bpy.context.scene
    frame_camera(scene, mesh_obj)
    scene.render.engine = args.engine
    scene.render.resolution_x = scene.render.resolution_y = args.size
    scene.render.image_settings.file_format = "PNG"
    if args.engine == "CYCLES":
        scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", args.samples, False
    else:
        scene.display.shading.color_type = "TEXTURE"
        scene.display.shading.light = "STUDIO"
    scratch = Path(tempfile.mkdtemp())
    rest = render(scene, scratch / "rest.png")
    chosen = pose(armature, mesh_obj)
    posed = render(scene, scratch / "posed.png")
    side_by_side = np.concatenate([rest, posed], axis=1)              # [H, 2W, 4]
    out = bpy.data.images.new("side_by_side", side_by_side.shape[1], side_by_side.shape[0], alpha=True)
    out.pixels.foreach_set(side_by_side.ravel())
    out.filepath_raw = str(args.out)
    out.file_format = "PNG"
    out.save()
    addon_env.emit({"out": str(args.out), "posed_bones": chosen, "engine": args.engine})


if __name__ == "__main__":
    main()
