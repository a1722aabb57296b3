"""Marker files: keypoints a user (or another tool) placed on a mesh, optionally with the bones between them.

JSON, in the mesh's own coordinates as Blender shows them (Z up):
    {"keypoints": [[x, y, z], ...],            # K >= 2 points
     "names": ["hips", ...],                   # optional, K names
     "edges": [[i, j], ...]}                   # optional: known bones; else the skeleton is inferred
A joints file of a synthetic body (training/synthetic: "joints_body" + "parents" + "names") is read the same way,
its parent links becoming the edges, so the example bodies and synthetic samples can be rigged from their true
joints.
"edges" becomes an adjacency with weight 1 on the listed pairs and 0 elsewhere, so the MST follows them; without
edges every pair gets the same weight and the tree is the distance MST.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import KeyDiffError


@dataclass(frozen=True)
class Markers:
    keypoints: np.ndarray          # [K, 3]
    adjacency: np.ndarray          # [K, K] symmetric, >= 0
    names: tuple[str, ...] | None = None


def load_markers(path: str | os.PathLike) -> Markers:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise KeyDiffError("unreadable_file", f"cannot read marker file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise KeyDiffError("unreadable_file", f"{path.name} is not valid JSON: {exc}") from exc
    if isinstance(doc, dict) and "joints_body" in doc and "parents" in doc:
        parents = doc["parents"]
        doc = {"keypoints": doc["joints_body"], "names": doc.get("names"),
               "edges": [[child, parent] for child, parent in enumerate(parents) if parent >= 0]}
    if not isinstance(doc, dict) or "keypoints" not in doc:
        raise KeyDiffError("invalid_keypoints", f"{path.name} needs a 'keypoints' list of [x, y, z] points")
    try:
        keypoints = np.asarray(doc["keypoints"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise KeyDiffError("invalid_keypoints", f"{path.name}: 'keypoints' must be a list of [x, y, z]") from exc
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise KeyDiffError("invalid_keypoints", f"{path.name}: keypoints must have shape (K, 3), got {keypoints.shape}")
    if not np.isfinite(keypoints).all():
        bad = int((~np.isfinite(keypoints).all(axis=1)).sum())
        raise KeyDiffError("invalid_keypoints", f"{path.name}: {bad} keypoints have NaN or infinite coordinates")
    count = len(keypoints)
    names = doc.get("names")
    if names is not None and (len(names) != count or not all(isinstance(n, str) for n in names)):
        raise KeyDiffError("invalid_keypoints", f"{path.name}: 'names' must be {count} strings")
    adjacency = np.ones((count, count)) - np.eye(count)
    if doc.get("edges") is not None:
        edges = np.asarray(doc["edges"], dtype=np.int64).reshape(-1, 2)
        if edges.size and (edges.min() < 0 or edges.max() >= count):
            raise KeyDiffError("invalid_keypoints", f"{path.name}: edge indices must lie in [0, {count - 1}]")
        adjacency = np.zeros((count, count))
        adjacency[edges[:, 0], edges[:, 1]] = adjacency[edges[:, 1], edges[:, 0]] = 1.0
    return Markers(keypoints, adjacency, tuple(names) if names is not None else None)


def save_markers(path: str | os.PathLike, keypoints: np.ndarray, *, names=None, edges=None) -> None:
    doc = {"keypoints": np.asarray(keypoints).round(6).tolist()}
    if names is not None:
        doc["names"] = list(names)
    if edges is not None:
        doc["edges"] = np.asarray(edges).tolist()
    Path(path).write_text(json.dumps(doc, indent=1))
