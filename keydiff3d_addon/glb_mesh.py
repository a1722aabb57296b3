"""Reads the bundle's mesh.glb with numpy alone, keeping the file's vertex order.

The order matters: row i of weights.npz belongs to vertex i. Blender's glTF importer may split or merge vertices
(by normals, UV seams), so the add-on reads the accessors itself. pygltflib is not in Blender's Python; the file is
our own simple GLB (one or more triangle primitives, plain accessors), so struct + numpy suffice.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_GLB_MAGIC, _JSON_CHUNK, _BIN_CHUNK = b"glTF", 0x4E4F534A, 0x004E4942
_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_TRIANGLES = 4
# glTF (Y up, front +Z) -> Blender (Z up, front -Y): (x, y, z) -> (x, -z, y)
GLTF_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


class GlbError(ValueError):
    """The file is not a GLB this reader understands; the message names what is wrong."""


@dataclass(frozen=True)
class GlbMesh:
    positions: np.ndarray                  # [V, 3] float32, Blender axes (Z up)
    triangles: np.ndarray                  # [F, 3] int32
    colors: np.ndarray | None = None       # [V, 4] float32 linear RGBA
    uvs: np.ndarray | None = None          # [V, 2] float32, Blender's v (up from the bottom)
    texture: bytes | None = None           # encoded image (PNG/JPEG) of the base colour
    texture_mime: str | None = None

    @property
    def num_vertices(self) -> int:
        return int(self.positions.shape[0])


def read_glb_mesh(path: str | Path) -> GlbMesh:
    """All triangle primitives of the file, concatenated in file order, node transforms applied."""
    document, binary = _read_container(Path(path))
    parts = []
    for node_index, matrix in _mesh_nodes(document):
        mesh = document["meshes"][document["nodes"][node_index]["mesh"]]
        for primitive in mesh.get("primitives", []):
            if primitive.get("mode", _TRIANGLES) != _TRIANGLES:
                raise GlbError(f"primitive mode {primitive.get('mode')} is not triangles")
            parts.append(_read_primitive(document, binary, primitive, matrix))
    if not parts:
        raise GlbError("the file holds no triangle mesh")
    offsets = np.cumsum([0] + [len(p["positions"]) for p in parts[:-1]])
    positions = np.concatenate([p["positions"] for p in parts]).astype(np.float32)
    triangles = np.concatenate([p["triangles"] + o for p, o in zip(parts, offsets)]).astype(np.int32)
    colors = _join_optional(parts, "colors", 4, 1.0)
    uvs = _join_optional(parts, "uvs", 2, 0.0)
    texture, mime = _base_color_image(document, binary, parts[0]["material"]) if len(parts) == 1 else (None, None)
    return GlbMesh(positions, triangles, colors, uvs if texture is not None else None, texture, mime)


def _read_container(path: Path) -> tuple[dict, bytes]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GlbError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(raw) < 20 or raw[:4] != _GLB_MAGIC:
        raise GlbError(f"{path.name} is not a binary glTF (.glb) file")
    version, total = struct.unpack_from("<II", raw, 4)
    if version != 2 or total > len(raw):
        raise GlbError(f"{path.name}: glTF container version {version}, length {total} of {len(raw)} bytes")
    document, binary, offset = None, b"", 12
    while offset + 8 <= total:
        length, kind = struct.unpack_from("<II", raw, offset)
        chunk = raw[offset + 8: offset + 8 + length]
        if kind == _JSON_CHUNK and document is None:
            try:
                document = json.loads(chunk.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise GlbError(f"{path.name}: unreadable JSON chunk ({exc})") from exc
        elif kind == _BIN_CHUNK and not binary:
            binary = chunk
        offset += 8 + length + (-length % 4)
    if not isinstance(document, dict):
        raise GlbError(f"{path.name} has no JSON chunk")
    return document, binary


def _mesh_nodes(document: dict) -> list[tuple[int, np.ndarray]]:
    """(node, world matrix) for every node with a mesh, depth first from the scene roots, as glTF tools walk."""
    nodes = document.get("nodes", [])
    scenes = document.get("scenes") or [{"nodes": list(range(len(nodes)))}]
    found: list[tuple[int, np.ndarray]] = []
    stack = [(n, np.eye(4)) for n in reversed(scenes[document.get("scene", 0)].get("nodes", []))]
    while stack:
        index, parent_matrix = stack.pop()
        node = nodes[index]
        matrix = parent_matrix @ _local_matrix(node)
        if "mesh" in node:
            found.append((index, matrix))
        stack.extend((c, matrix) for c in reversed(node.get("children", [])))
    return found


def _local_matrix(node: dict) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], np.float64).reshape(4, 4).T   # glTF stores column-major
    x, y, z, w = node.get("rotation", (0.0, 0.0, 0.0, 1.0))
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.asarray(node.get("scale", (1.0, 1.0, 1.0)))
    matrix[:3, 3] = node.get("translation", (0.0, 0.0, 0.0))
    return matrix


def _read_primitive(document: dict, binary: bytes, primitive: dict, matrix: np.ndarray) -> dict:
    attributes = primitive.get("attributes", {})
    if "POSITION" not in attributes:
        raise GlbError("a primitive has no POSITION attribute")
    positions = _accessor(document, binary, attributes["POSITION"]).reshape(-1, 3).astype(np.float64)
    positions = (positions @ matrix[:3, :3].T + matrix[:3, 3]) @ GLTF_TO_BLENDER.T
    if "indices" in primitive:
        indices = _accessor(document, binary, primitive["indices"]).astype(np.int64).ravel()
    else:
        indices = np.arange(len(positions))
    if len(indices) % 3 or (len(indices) and (indices.min() < 0 or indices.max() >= len(positions))):
        raise GlbError(f"triangle indices do not fit {len(positions)} vertices")
    colors = None
    if "COLOR_0" in attributes:
        colors = _normalised(document, binary, attributes["COLOR_0"])
        if colors.shape[1] == 3:
            colors = np.column_stack([colors, np.ones(len(colors), np.float32)])
    uvs = None
    if "TEXCOORD_0" in attributes:
        uv = _normalised(document, binary, attributes["TEXCOORD_0"])
        uvs = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]])
    return {"positions": positions, "triangles": indices.reshape(-1, 3), "colors": colors, "uvs": uvs,
            "material": primitive.get("material")}


def _accessor(document: dict, binary: bytes, index: int) -> np.ndarray:
    """[count, width] array of the accessor's stored components (byteStride honoured; sparse not supported)."""
    try:
        accessor = document["accessors"][index]
        dtype = np.dtype(_COMPONENTS[accessor["componentType"]])
        width, count = _WIDTHS[accessor["type"]], int(accessor["count"])
        view = document["bufferViews"][accessor["bufferView"]]
    except (KeyError, IndexError, TypeError) as exc:
        raise GlbError(f"accessor {index} is malformed or unsupported ({exc})") from exc
    if "sparse" in accessor:
        raise GlbError(f"accessor {index} is sparse, which this reader does not support")
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    stride = view.get("byteStride") or dtype.itemsize * width
    end = start + stride * (count - 1) + dtype.itemsize * width if count else start
    if end > view.get("byteOffset", 0) + view["byteLength"] or end > len(binary):
        raise GlbError(f"accessor {index} reaches past its buffer")
    if stride == dtype.itemsize * width:
        return np.frombuffer(binary, dtype, count * width, start).reshape(count, width)
    rows = np.lib.stride_tricks.as_strided(
        np.frombuffer(binary, np.uint8, end - start, start), (count, dtype.itemsize * width), (stride, 1)
    )
    return np.ascontiguousarray(rows).view(dtype).reshape(count, width)


def _normalised(document: dict, binary: bytes, index: int) -> np.ndarray:
    values = _accessor(document, binary, index)
    if values.dtype.kind in "ui" and document["accessors"][index].get("normalized"):
        return (values.astype(np.float32) / np.iinfo(values.dtype).max).astype(np.float32)
    return values.astype(np.float32)


def _join_optional(parts: list[dict], key: str, width: int, fill: float) -> np.ndarray | None:
    if all(p[key] is None for p in parts):
        return None
    return np.concatenate([
        p[key] if p[key] is not None else np.full((len(p["positions"]), width), fill, np.float32) for p in parts
    ]).astype(np.float32)


def _base_color_image(document: dict, binary: bytes, material_index: int | None) -> tuple[bytes | None, str | None]:
    try:
        material = document["materials"][material_index]
        texture = document["textures"][material["pbrMetallicRoughness"]["baseColorTexture"]["index"]]
        image = document["images"][texture["source"]]
        view = document["bufferViews"][image["bufferView"]]
    except (KeyError, IndexError, TypeError):
        return None, None          # no embedded base-colour image: vertex colours or plain grey
    start = view.get("byteOffset", 0)
    return bytes(binary[start: start + view["byteLength"]]), image.get("mimeType", "image/png")
