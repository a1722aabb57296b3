"""glTF is Y-up with the model's front towards +Z; our world (Blender's) is Z-up with the front towards -Y.

Every glTF file we write or read goes through these two matrices, exactly as Blender's own glTF importer and
exporter convert, so a bundle opened in Blender, three.js or a game engine stands upright and faces forward.
"""

from __future__ import annotations

import numpy as np

# (x, y, z) in our Z-up world  ->  (x, z, -y) in glTF's Y-up space.
WORLD_TO_GLTF = np.array(
    [[1.0, 0.0, 0.0, 0.0],
     [0.0, 0.0, 1.0, 0.0],
     [0.0, -1.0, 0.0, 0.0],
     [0.0, 0.0, 0.0, 1.0]]
)
GLTF_TO_WORLD = WORLD_TO_GLTF.T.copy()   # a rotation: its inverse is its transpose


def points_to_gltf(points: np.ndarray) -> np.ndarray:
    """[N, 3] world points (or directions) in glTF axes."""
    return np.asarray(points) @ WORLD_TO_GLTF[:3, :3].T


def points_from_gltf(points: np.ndarray) -> np.ndarray:
    """[N, 3] glTF points (or directions) in world axes."""
    return np.asarray(points) @ GLTF_TO_WORLD[:3, :3].T
