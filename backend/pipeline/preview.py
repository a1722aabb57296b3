"""preview.png of a rig: the mesh coloured by its skin weights with the skeleton drawn on top, from a few views.

It lets a user (and a reviewer of the README) judge a rig at a glance without opening Blender: each bone has its
own colour, a vertex shows the weight-blend of its bones' colours, bones are drawn as lines from head to tail.
"""

from __future__ import annotations

import colorsys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..cameras import canonical_transform, look_at_camera, orbit_center, project
from ..mesh import Mesh
from ..rig import Rig, SkinWeights
from ..views.render import render_views

PREVIEW_FILE = "preview.png"
PREVIEW_AZIMUTHS_DEG = (0.0, 45.0, 90.0)   # front, three-quarter, side
PREVIEW_ELEVATION_DEG = 10.0


def bone_colors(num_bones: int) -> np.ndarray:
    """[B, 3] linear RGB, hues spread by the golden ratio so neighbouring bone indices differ clearly."""
    hues = (np.arange(num_bones) * 0.618033988749895) % 1.0
    return np.array([colorsys.hsv_to_rgb(h, 0.75, 0.95) for h in hues]) ** 2.2


def weight_colors(weights: SkinWeights) -> np.ndarray:
    """[V, 4] linear RGBA: each vertex's weight-blend of its bones' colours."""
    rgb = np.einsum("vk,vkc->vc", weights.weights, bone_colors(weights.num_bones)[weights.indices])
    return np.column_stack([rgb, np.ones(len(rgb))]).astype(np.float32)


def render_preview(mesh: Mesh, rig: Rig, weights: SkinWeights, *, image_size: int = 320) -> np.ndarray:
    """[H, W, 3] uint8: the views side by side."""
    to_canonical = canonical_transform(mesh.vertices)
    canonical_mesh = replace(mesh.transformed(to_canonical.matrix), colors=weight_colors(weights),
                             uvs=None, texture=None)
    canonical_joints = to_canonical.apply(rig.joints)
    cameras = [
        look_at_camera(orbit_center(az, PREVIEW_ELEVATION_DEG, 2.0), width=image_size)
        for az in PREVIEW_AZIMUTHS_DEG
    ]
    views = render_views(canonical_mesh, cameras)
    panels = []
    for image, camera in zip(views.images, cameras):
        panel = Image.fromarray(image)
        draw = ImageDraw.Draw(panel)
        pixels, _ = project(canonical_joints, camera)
        width = max(2, image_size // 120)
        for head, tail, deform in zip(rig.bone_head_joint, rig.bone_tail_joint, rig.bone_deforms):
            color = (20, 20, 20) if deform else (140, 140, 140)
            draw.line([tuple(pixels[head]), tuple(pixels[tail])], fill=color, width=width)
        radius = width + 1
        for u, v in pixels:
            draw.ellipse([u - radius, v - radius, u + radius, v + radius], fill=(255, 255, 255), outline=(0, 0, 0))
        panels.append(np.asarray(panel))
    return np.concatenate(panels, axis=1)


def write_preview(path: Path, mesh: Mesh, rig: Rig, weights: SkinWeights, *, image_size: int = 320) -> None:
    Image.fromarray(render_preview(mesh, rig, weights, image_size=image_size)).save(path)
