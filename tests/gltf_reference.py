"""A slow, literal glTF 2.0 skinning evaluator that the glTF tests trust (written independently of backend/).

It follows the spec text step by step, favouring obviousness over speed: accessors decoded element by element,
node matrices from TRS with a hand-written quaternion formula, world matrices by recursion, and per vertex
    v' = Σ_k w_k · globalTransform(joint_k) · inverseBindMatrix_k · v      (weights renormalised)
for skinned mesh nodes (whose own transform is ignored), and v' = globalTransform(node) · v for other meshes.

Conventions shared with backend/export/gltf_reader.py (documented there), so the two can be compared:
  * vertex order: mesh nodes of the default scene depth-first, primitives in order, triangle primitives only;
  * NaN / negative weights count as 0; a skinned vertex with no positive weight uses its node's transform;
  * bind pose: joint j's world matrix is K · IBM_j⁻¹ with K the world matrix of the first mesh node using
    the first skin that lists j; other nodes keep their local matrices.
Output is in glTF axes (Y up).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from pathlib import Path

import numpy as np

_FORMATS = {5120: ("b", 1), 5121: ("B", 1), 5122: ("h", 2), 5123: ("H", 2), 5125: ("I", 4), 5126: ("f", 4)}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_NORM = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}


class ReferenceGltf:
    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        raw = path.read_bytes()
        self.bin = None
        if raw[:4] == b"glTF":
            json_len = struct.unpack_from("<I", raw, 12)[0]
            self.doc = json.loads(raw[20:20 + json_len])
            at = 20 + json_len
            if at < len(raw):
                bin_len = struct.unpack_from("<I", raw, at)[0]
                self.bin = raw[at + 8: at + 8 + bin_len]
        else:
            self.doc = json.loads(raw)
        self.path = path
        self.nodes = self.doc.get("nodes", [])
        self.parent = {}
        for i, node in enumerate(self.nodes):
            for c in node.get("children", []):
                self.parent[c] = i

    # --- data -----------------------------------------------------------------------------------------
    def _buffer(self, index: int) -> bytes:
        buf = self.doc["buffers"][index]
        uri = buf.get("uri")
        if uri is None:
            return self.bin
        if uri.startswith("data:"):
            return base64.b64decode(uri.split(",", 1)[1])
        return (self.path.parent / uri).read_bytes()

    def _read_elements(self, view_index: int, offset: int, count: int, ctype: int, width: int) -> list[list[float]]:
        view = self.doc["bufferViews"][view_index]
        data = self._buffer(view["buffer"])
        fmt, size = _FORMATS[ctype]
        stride = view.get("byteStride") or size * width
        start = view.get("byteOffset", 0) + offset
        return [list(struct.unpack_from("<" + fmt * width, data, start + e * stride)) for e in range(count)]

    def accessor(self, index: int, normalise: bool = True) -> np.ndarray:
        acc = self.doc["accessors"][index]
        width, ctype, count = _WIDTH[acc["type"]], acc["componentType"], acc["count"]
        if "bufferView" in acc:
            rows = self._read_elements(acc["bufferView"], acc.get("byteOffset", 0), count, ctype, width)
        else:
            rows = [[0] * width for _ in range(count)]
        sparse = acc.get("sparse")
        if sparse:
            idx = sparse["indices"]
            positions = self._read_elements(idx["bufferView"], idx.get("byteOffset", 0), sparse["count"], idx["componentType"], 1)
            vals = sparse["values"]
            values = self._read_elements(vals["bufferView"], vals.get("byteOffset", 0), sparse["count"], ctype, width)
            for (row,), value in zip(positions, values):
                rows[row] = value
        out = np.array(rows, dtype=np.float64)
        if acc.get("normalized") and normalise and ctype != 5126:
            out = np.maximum(out / _NORM[ctype], -1.0)
        if acc["type"] == "MAT4":
            out = out.reshape(-1, 4, 4).transpose(0, 2, 1)
        return out

    # --- transforms -----------------------------------------------------------------------------------
    def local_matrix(self, i: int) -> np.ndarray:
        node = self.nodes[i]
        if "matrix" in node:
            return np.array(node["matrix"], dtype=np.float64).reshape(4, 4).T
        return trs_matrix(node.get("translation", [0, 0, 0]), node.get("rotation", [0, 0, 0, 1]), node.get("scale", [1, 1, 1]))

    def world_matrices(self, local: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        def world(i: int) -> np.ndarray:
            m = local[i]
            return world(self.parent[i]) @ m if i in self.parent else m
        return {i: world(i) for i in range(len(self.nodes))}

    def bind_locals(self) -> dict[int, np.ndarray]:
        """Local matrices that put every joint at its bind pose (K · IBM⁻¹), other nodes unchanged."""
        local = {i: self.local_matrix(i) for i in range(len(self.nodes))}
        rest_world = self.world_matrices(local)
        target = {}
        skins = self.doc.get("skins", [])
        users = {}
        for i, node in enumerate(self.nodes):
            if "skin" in node and "mesh" in node:
                users.setdefault(node["skin"], i)
        for s in sorted(users):
            ibm = self.accessor(skins[s]["inverseBindMatrices"]) if "inverseBindMatrices" in skins[s] else None
            for k, j in enumerate(skins[s]["joints"]):
                if j not in target:
                    inv = np.eye(4) if ibm is None else ibm[k]
                    target[j] = rest_world[users[s]] @ np.linalg.inv(inv)
        # Top-down: a joint's new local is its parent's new world⁻¹ times its target world.
        new_local = dict(local)
        done: dict[int, np.ndarray] = {}

        def world(i: int) -> np.ndarray:
            if i not in done:
                parent_world = world(self.parent[i]) if i in self.parent else np.eye(4)
                if i in target:
                    new_local[i] = np.linalg.inv(parent_world) @ target[i]
                done[i] = parent_world @ new_local[i]
            return done[i]

        for i in range(len(self.nodes)):
            world(i)
        return new_local

    # --- skinning -------------------------------------------------------------------------------------
    def scene_mesh_nodes(self) -> list[int]:
        scenes = self.doc.get("scenes")
        if scenes:
            roots = scenes[self.doc.get("scene", 0)].get("nodes", [])
        else:
            roots = [i for i in range(len(self.nodes)) if i not in self.parent]
        order = []

        def visit(i: int) -> None:
            order.append(i)
            for c in self.nodes[i].get("children", []):
                visit(c)

        for r in roots:
            visit(r)
        return [i for i in order if "mesh" in self.nodes[i]]

    def skinned_positions(self, local: dict[int, np.ndarray]) -> np.ndarray:
        """[V, 3] world positions (glTF axes) of every triangle vertex, for the given local node matrices."""
        world = self.world_matrices(local)
        out = []
        for i in self.scene_mesh_nodes():
            node = self.nodes[i]
            for prim in self.doc["meshes"][node["mesh"]]["primitives"]:
                if prim.get("mode", 4) not in (4, 5, 6):
                    continue
                attrs = prim["attributes"]
                positions = self.accessor(attrs["POSITION"])
                if "skin" in node and "JOINTS_0" in attrs:
                    out.append(self._skin(node["skin"], attrs, positions, world, world[i]))
                else:
                    homogeneous = np.c_[positions, np.ones(len(positions))]
                    out.append((homogeneous @ world[i].T)[:, :3])
        return np.concatenate(out)

    def _skin(self, s: int, attrs: dict, positions: np.ndarray, world: dict, node_world: np.ndarray) -> np.ndarray:
        skin = self.doc["skins"][s]
        ibm = self.accessor(skin["inverseBindMatrices"]) if "inverseBindMatrices" in skin else np.tile(np.eye(4), (len(skin["joints"]), 1, 1))
        joint_matrix = [world[j] @ ibm[k] for k, j in enumerate(skin["joints"])]
        joints = [self.accessor(attrs["JOINTS_0"], normalise=False)]
        weights = [self.accessor(attrs["WEIGHTS_0"])]
        if "JOINTS_1" in attrs and "WEIGHTS_1" in attrs:
            joints.append(self.accessor(attrs["JOINTS_1"], normalise=False))
            weights.append(self.accessor(attrs["WEIGHTS_1"]))
        joints, weights = np.concatenate(joints, axis=1), np.concatenate(weights, axis=1)
        result = np.zeros((len(positions), 3))
        for v in range(len(positions)):
            w = [x if math.isfinite(x) and x > 0 else 0.0 for x in weights[v]]
            total = sum(w)
            p = np.append(positions[v], 1.0)
            if total <= 0:
                result[v] = (node_world @ p)[:3]
                continue
            acc = np.zeros(4)
            for k in range(len(w)):
                if w[k] > 0:
                    acc += (w[k] / total) * (joint_matrix[int(joints[v, k])] @ p)
            result[v] = acc[:3]
        return result


def trs_matrix(t, q, s) -> np.ndarray:
    x, y, z, w = (float(c) for c in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    m = np.eye(4)
    m[:3, :3] = rotation @ np.diag([float(c) for c in s])
    m[:3, 3] = [float(c) for c in t]
    return m


def with_extra_rotation(local: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The local matrix T·R·S with its rotation R replaced by R·delta (the node's rotation property changed)."""
    scale = np.linalg.norm(local[:3, :3], axis=0)
    rotation = local[:3, :3] / scale
    out = local.copy()
    out[:3, :3] = rotation @ delta @ np.diag(scale)
    return out
