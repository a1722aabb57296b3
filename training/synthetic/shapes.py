"""Closed primitive surfaces (tapered capsules, ellipsoids) built as surfaces of revolution.

Our own small builder rather than trimesh primitives: the profile rings give every vertex an exact axial
coordinate, which is what the ground-truth skin weights are computed from, and tapered limbs (wide at the
hip, narrow at the ankle) are not among trimesh's primitives.
"""

from __future__ import annotations

import numpy as np


def revolve_profile(z_rings: np.ndarray, rho_rings: np.ndarray, z_bottom: float, z_top: float,
                    segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface of revolution about +Z with poles at z_bottom and z_top, faces CCW from outside.

    z_rings, rho_rings: [R] ring heights (increasing) and radii (> 0).
    Returns vertices [2 + R*S, 3] (bottom pole, R rings of S vertices, top pole) and faces [2*R*S, 3] int64.
    """
    num_rings, s = len(z_rings), segments
    angles = np.arange(s) * (2.0 * np.pi / s)
    ring_xyz = np.stack([
        rho_rings[:, None] * np.cos(angles)[None, :],
        rho_rings[:, None] * np.sin(angles)[None, :],
        np.broadcast_to(z_rings[:, None], (num_rings, s)),
    ], axis=-1).reshape(-1, 3)                                                  # [R*S, 3]
    vertices = np.concatenate([[[0.0, 0.0, z_bottom]], ring_xyz, [[0.0, 0.0, z_top]]])
    top = 1 + num_rings * s
    ring = 1 + np.arange(num_rings)[:, None] * s + np.arange(s)[None, :]        # [R, S] vertex ids
    nxt = np.roll(ring, -1, axis=1)                                             # next vertex around
    bottom_fan = np.stack([np.zeros(s, np.int64), nxt[0], ring[0]], axis=1)
    top_fan = np.stack([np.full(s, top), ring[-1], nxt[-1]], axis=1)
    a, b, c, d = ring[:-1], nxt[:-1], nxt[1:], ring[1:]                         # quad corners [R-1, S]
    quads = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).reshape(-1, 3)
    faces = np.concatenate([bottom_fan, quads, top_fan]).astype(np.int64)
    return vertices, faces


def tapered_capsule(length: float, radius_start: float, radius_end: float, segments: int = 16,
                    cap_rings: int = 4, body_rings: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A capsule along +Z from 0 to `length`, hemispherical caps of the two radii, straight taper between."""
    theta = np.linspace(0.0, np.pi / 2, cap_rings + 1)[1:]                      # exclude the pole
    z_bottom = -radius_start * np.cos(theta)                                   # rising towards z = 0
    rho_bottom = radius_start * np.sin(theta)
    t = np.linspace(0.0, 1.0, body_rings + 2)[1:-1]
    z_body = t * length
    rho_body = radius_start + t * (radius_end - radius_start)
    z_top = length + radius_end * np.cos(theta[::-1])                          # rising from z = length
    rho_top = radius_end * np.sin(theta[::-1])
    # the cap equators (theta = pi/2 gives z = 0 and z = length) are the first and last body rings
    z_rings = np.concatenate([z_bottom, z_body, z_top])
    rho_rings = np.concatenate([rho_bottom, rho_body, rho_top])
    keep = rho_rings > 1e-9
    return revolve_profile(z_rings[keep], rho_rings[keep], -radius_start, length + radius_end, segments)


def ellipsoid(semi_axes: np.ndarray, segments: int = 20, rings: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid centred at the origin with semi-axes (a, b, c) along x, y, z."""
    phi = np.linspace(0.0, np.pi, rings + 2)[1:-1]                              # polar angle, no poles
    vertices, faces = revolve_profile(-np.cos(phi), np.sin(phi), -1.0, 1.0, segments)
    return vertices * np.asarray(semi_axes, dtype=np.float64), faces


def frame_from_direction(direction: np.ndarray, lateral_hint: np.ndarray | None = None) -> np.ndarray:
    """[3, 3] rows = unit local x, y, z axes with z along `direction` and x as close to `lateral_hint` as possible.

    The default hint is world X (a body's left-right axis), falling back to world Y when the direction is
    itself along X, so flattened parts (chests, wings) keep a predictable orientation.
    """
    z = np.asarray(direction, dtype=np.float64)
    z = z / np.linalg.norm(z)
    hint = np.array([1.0, 0.0, 0.0]) if lateral_hint is None else np.asarray(lateral_hint, dtype=np.float64)
    x = hint - z * (hint @ z)
    if np.linalg.norm(x) < 1e-6:
        hint = np.array([0.0, 1.0, 0.0])
        x = hint - z * (hint @ z)
    x = x / np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])
