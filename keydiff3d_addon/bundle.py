"""Reads a result bundle (rig.json + weights.npz + mesh.glb) into checked arrays; numpy + json, no bpy.

Everything the scene builder needs is validated here first, so a bad bundle fails before Blender data is made.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .glb_mesh import GlbError, GlbMesh, read_glb_mesh

BUNDLE_FORMAT = "keydiff3d-rig"
BUNDLE_VERSION = 1
RIG_FILE, WEIGHTS_FILE, MESH_FILE = "rig.json", "weights.npz", "mesh.glb"


class BundleError(ValueError):
    """A bundle that cannot be imported; the message names the file and the problem."""


@dataclass(frozen=True)
class BundleBones:
    names: tuple[str, ...]        # [B]
    heads: np.ndarray             # [B, 3] float64, object space (Z up)
    tails: np.ndarray             # [B, 3]
    parents: np.ndarray           # [B] int64, -1 for bones starting at the root joint
    deforms: np.ndarray           # [B] bool; False = link bone (no weights, never posed)

    @property
    def count(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Bundle:
    folder: Path
    document: dict                # rig.json as read
    bones: BundleBones
    weight_indices: np.ndarray    # [V, k] int32 bone index per slot
    weight_values: np.ndarray     # [V, k] float32, rows sum to 1, unused slots 0
    mesh: GlbMesh | None          # None when read with with_mesh=False (binding to an existing object)

    @property
    def num_vertices(self) -> int:
        return int(self.weight_indices.shape[0])


def read_bundle(folder: str | Path, *, with_mesh: bool = True) -> Bundle:
    folder = Path(folder)
    if not (folder / RIG_FILE).is_file():
        raise BundleError(f"{folder} is not a KeyDiff3D bundle (no {RIG_FILE})")
    document = _read_document(folder / RIG_FILE)
    bones = _read_bones(document, folder / RIG_FILE)
    indices, values = _read_weights(folder / WEIGHTS_FILE, bones)
    mesh = None
    if with_mesh:
        mesh_name = str((document.get("files") or {}).get("mesh", MESH_FILE))
        try:
            mesh = read_glb_mesh(folder / Path(mesh_name).name)
        except (GlbError, KeyError, IndexError, TypeError, ValueError) as exc:  # any malformed structure
            raise BundleError(f"{folder / mesh_name}: {exc}") from exc
        if mesh.num_vertices != len(indices):
            raise BundleError(
                f"{mesh_name} has {mesh.num_vertices} vertices but {WEIGHTS_FILE} has {len(indices)} rows; "
                "the bundle is inconsistent"
            )
    return Bundle(folder, document, bones, indices, values, mesh)


def _read_document(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a {BUNDLE_FORMAT!r} document")
    version = document.get("version")
    if not isinstance(version, int) or version > BUNDLE_VERSION:
        raise BundleError(f"{path} has bundle version {version!r}; this add-on reads up to {BUNDLE_VERSION}")
    return document


def _read_bones(document: dict, path: Path) -> BundleBones:
    bones = document.get("bones")
    if not isinstance(bones, list) or not bones:
        raise BundleError(f"{path}: 'bones' must be a non-empty list")
    try:
        names = tuple(str(b["name"]) for b in bones)
        heads = np.asarray([b["head"] for b in bones], np.float64)
        tails = np.asarray([b["tail"] for b in bones], np.float64)
        parents = np.asarray([b["parent"] for b in bones], np.int64)
        deforms = np.asarray([bool(b.get("deform", True)) for b in bones], bool)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: every bone needs name, head [x,y,z], tail [x,y,z], parent ({exc})") from exc
    count = len(bones)
    if heads.shape != (count, 3) or tails.shape != (count, 3) or not np.isfinite(heads).all() \
            or not np.isfinite(tails).all():
        raise BundleError(f"{path}: bone heads/tails must be finite [x, y, z] points")
    if len(set(names)) != count:
        raise BundleError(f"{path}: bone names must be unique")
    if parents.min() < -1 or parents.max() >= count or (parents == np.arange(count)).any():
        raise BundleError(f"{path}: bone parents must lie in [-1, {count - 1}] and not point to themselves")
    _check_acyclic(parents, path)
    return BundleBones(names, heads, tails, parents, deforms)


def _check_acyclic(parents: np.ndarray, path: Path) -> None:
    depth_walk = parents.copy()
    for _ in range(len(parents)):          # after B steps every chain must have reached -1
        depth_walk = np.where(depth_walk >= 0, parents[np.maximum(depth_walk, 0)], -1)
    if (depth_walk >= 0).any():
        raise BundleError(f"{path}: bone parents form a cycle")


def _read_weights(path: Path, bones: BundleBones) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            indices = np.asarray(data["indices"])
            values = np.asarray(data["weights"])
            bone_names = tuple(str(n) for n in data["bone_names"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path} is not a readable weights file (indices, weights, bone_names): {exc}") from exc
    if indices.ndim != 2 or indices.shape != values.shape:
        raise BundleError(f"{path}: indices {indices.shape} and weights {values.shape} must be equal [V, k]")
    if bone_names != bones.names:
        raise BundleError(f"{path}: bone_names do not match the bones of {RIG_FILE}")
    if indices.size and (indices.min() < 0 or indices.max() >= bones.count):
        raise BundleError(f"{path}: bone indices must lie in [0, {bones.count - 1}]")
    if not np.isfinite(values).all() or (values < 0).any():
        raise BundleError(f"{path}: weights must be finite and non-negative")
    return indices.astype(np.int32), values.astype(np.float32)
