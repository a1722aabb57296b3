"""Random but pleasant colours for body parts, and a tiny helper to assemble skeletons by name."""

from __future__ import annotations

import colorsys

import numpy as np

from backend.rig import Rig


def random_colors(rng: np.random.Generator, groups: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One linear-RGB colour per group, hues spread around the wheel so neighbouring parts differ."""
    base = rng.uniform(0.0, 1.0)
    colors = {}
    for i, group in enumerate(groups):
        hue = (base + i / len(groups) + rng.uniform(-0.06, 0.06)) % 1.0
        saturation = rng.uniform(0.35, 0.8)
        value = rng.uniform(0.45, 0.95)
        srgb = np.array(colorsys.hsv_to_rgb(hue, saturation, value))
        colors[group] = srgb ** 2.2                                     # sRGB -> linear (close enough)
    return colors


def skin_color(rng: np.random.Generator) -> np.ndarray:
    """A human skin tone (light to dark), linear RGB."""
    light = np.array([0.96, 0.80, 0.69])
    dark = np.array([0.36, 0.22, 0.15])
    t = rng.uniform(0.0, 1.0)
    return (light * (1 - t) + dark * t) ** 2.2


def rig_from_table(table: list[tuple[str, str | None, tuple[float, float, float]]]) -> Rig:
    """A Rig from (joint name, parent name or None, position) rows, parents listed before children."""
    names = [row[0] for row in table]
    index = {name: i for i, name in enumerate(names)}
    parents = [-1 if parent is None else index[parent] for _, parent, _ in table]
    joints = np.array([position for _, _, position in table], dtype=np.float64)
    return Rig(joints, np.array(parents), tuple(names))


def bone(rig: Rig, tail_joint: str) -> int:
    """Index of the bone that ends at `tail_joint`."""
    return rig.bone_names.index(tail_joint)


def pose_limits(rig: Rig, rules: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]]) -> np.ndarray:
    """[B, 2, 3] rotation limits in degrees; bones not named in `rules` stay rigid (0, 0)."""
    limits = np.zeros((rig.num_bones, 2, 3))
    for tail_joint, (low, high) in rules.items():
        limits[bone(rig, tail_joint)] = (low, high)
    return limits
