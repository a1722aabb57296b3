"""Tiny procedural 'ball-chain' figures rendered from the orbit cameras, for tests and smoke runs.

Not the benchmark (that is training/synthetic, CMU-driven bodies): a stick figure of 9 joints whose limbs
swing randomly, drawn as shaded spheres strung along the bones by exact ray-sphere intersection. Cheap
enough to make a few dozen samples in a second, and it has true joints, so every stage of training and
evaluation can be exercised end to end.
"""

from __future__ import annotations

import numpy as np

from backend.cameras import orbit_cameras, pixel_rays, projection_matrix
from training.data import ViewsSplit

# pelvis, chest, head, l/r hand, l/r knee, l/r foot
PARENTS = np.array([-1, 0, 1, 1, 1, 0, 0, 5, 6])
REST = np.array([[0, 0, 0], [0, 0, 0.25], [0, 0, 0.42], [0.3, 0, 0.25], [-0.3, 0, 0.25],
                 [0.1, 0, -0.2], [-0.1, 0, -0.2], [0.1, 0, -0.42], [-0.1, 0, -0.42]], dtype=np.float64)
BONE_COLOURS = np.array([[0.9, 0.2, 0.2], [0.9, 0.7, 0.1], [0.2, 0.6, 0.9], [0.3, 0.8, 0.3],
                         [0.8, 0.3, 0.8], [0.2, 0.8, 0.8], [0.6, 0.4, 0.2], [0.5, 0.5, 0.9]])


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """Joints [9, 3]: limbs swung by random angles about the parent joint, whole figure turned about Z."""
    joints = REST.copy()
    for child in range(2, len(PARENTS)):
        parent = PARENTS[child]
        offset = REST[child] - REST[parent]
        ax, ay = rng.uniform(-0.8, 0.8, size=2)
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        joints[child] = joints[parent] + rx @ ry @ offset
    yaw = rng.uniform(-0.5, 0.5)
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    return joints @ rz.T


def render_figure(joints: np.ndarray, cameras, balls_per_bone: int = 6, radius: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Images [V, S, S, 3] uint8 on white and masks [V, S, S] uint8 of the figure."""
    t = np.linspace(0.0, 1.0, balls_per_bone)
    children = np.arange(1, len(PARENTS))
    starts, ends = joints[PARENTS[children]], joints[children]  # [B, 3]
    centres = (starts[:, None] * (1 - t[:, None]) + ends[:, None] * t[:, None]).reshape(-1, 3)  # [B*n, 3]
    colours = np.repeat(BONE_COLOURS, balls_per_bone, axis=0)  # [B*n, 3]
    light = np.array([0.3, -0.6, 0.75]) / np.linalg.norm([0.3, -0.6, 0.75])
    images, masks = [], []
    for camera in cameras:
        origin, directions = pixel_rays(camera)  # [3], [H, W, 3]
        d = directions.reshape(-1, 1, 3)  # [P, 1, 3]
        oc = origin[None, None] - centres[None]  # [1, N, 3]
        b = (d * oc).sum(-1)  # [P, N]
        c = (oc * oc).sum(-1) - radius**2  # [1, N]
        disc = b * b - c
        hit_t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)  # [P, N]
        nearest = hit_t.argmin(axis=1)
        t_hit = hit_t[np.arange(len(nearest)), nearest]
        hit = np.isfinite(t_hit)
        points = origin + d[:, 0] * np.where(hit, t_hit, 0)[:, None]
        normals = (points - centres[nearest]) / radius
        shade = 0.35 + 0.65 * np.clip((normals * light).sum(-1), 0, 1)
        rgb = np.where(hit[:, None], colours[nearest] * shade[:, None], 1.0)
        images.append((rgb.reshape(camera.height, camera.width, 3) * 255).round().astype(np.uint8))
        masks.append(hit.reshape(camera.height, camera.width).astype(np.uint8))
    return np.stack(images), np.stack(masks)


def make_toy_split(count: int, image_size: int = 64, frames=(20, 4, 9, 14), seed: int = 0) -> ViewsSplit:
    rng = np.random.default_rng(seed)
    cameras = orbit_cameras(image_size=image_size, frames=list(frames))
    projections = np.stack([projection_matrix(c) for c in cameras]).astype(np.float32)  # [V, 3, 4]
    all_joints, all_images, all_masks = [], [], []
    for _ in range(count):
        joints = random_pose(rng)
        images, masks = render_figure(joints, cameras)
        all_joints.append(joints)
        all_images.append(images)
        all_masks.append(masks)
    return ViewsSplit(
        images=np.stack(all_images), masks=np.stack(all_masks),
        projections=np.broadcast_to(projections, (count, *projections.shape)).copy(),
        image_size=(image_size, image_size), frames=np.asarray(frames, dtype=np.int64),
        joints=np.stack(all_joints).astype(np.float32), groups=np.array([f"toy{i % 4}" for i in range(count)]),
        categories=np.array(["toy"] * count),
    )
