"""Write a Mesh + Rig + SkinWeights as one skinned glTF 2.0 file (.glb, or .gltf) that game engines, DCC tools
and the Khronos validator accept.

Layout. glTF axes (Y up) via axes.py. Scene = [armature node, mesh node]. One joint node per bone of the Rig,
placed at the bone's HEAD with identity rotation (a bone in rest pose is not rotated, and identity rotations
keep every engine's retargeting simple); node children = child bones, so a node's translation is its head
minus its parent bone's head. The skin lists every bone node (link bones too; they carry no weight) in bone
order, so JOINTS_0 values are our bone indices and inverseBindMatrices are translations by −head. The skinned
mesh node sits at the scene root without a transform, as the spec recommends.

Extras (`"keydiff3d"` on each bone node and on the skin) keep what glTF has no field for — each bone's tail,
whether it deforms, its index, the joint names — so gltf_reader.py rebuilds the identical Rig.
"""

from __future__ import annotations

import base64
import io
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pygltflib

from ..errors import KeyDiffError
from ..mesh import Mesh
from ..rig import Rig, SkinWeights
from .axes import WORLD_TO_GLTF

EXTRAS_KEY = "keydiff3d"
MAX_INFLUENCES = 4            # JOINTS_0 / WEIGHTS_0 only: what every engine reads
ROUGHNESS = 0.8
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def write_rigged_gltf(
    path: str | os.PathLike,
    mesh: Mesh,
    rig: Rig,
    weights: SkinWeights,
    *,
    name: str = "keydiff3d",
    external_buffer: bool = False,
) -> None:
    """Write `path` (.glb, or .gltf with an embedded buffer; `external_buffer` puts it in <stem>.bin).

    Atomic: written to a temporary file in the same folder and renamed into place.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".glb", ".gltf"):
        raise KeyDiffError("invalid_argument", f"output {path.name!r} must end in .glb or .gltf")
    mesh = mesh.validate()
    joints, joint_weights = skin_influences(mesh, rig, weights)
    builder = _Builder()
    doc = _document(builder, mesh, rig, joints, joint_weights, name)
    blob = builder.blob()
    doc.buffers = [pygltflib.Buffer(byteLength=len(blob))]
    if not path.parent.is_dir():
        raise KeyDiffError("output_not_writable", f"folder {path.parent} does not exist")
    if suffix == ".glb":
        doc.set_binary_blob(blob)
        _atomic_write(path, b"".join(doc.save_to_bytes()))
    elif external_buffer:
        bin_path = path.with_suffix(".bin")
        doc.buffers[0].uri = bin_path.name
        _atomic_write(bin_path, blob)
        _atomic_write(path, doc.gltf_to_json().encode("utf-8"))
    else:
        doc.buffers[0].uri = "data:application/octet-stream;base64," + base64.b64encode(blob).decode("ascii")
        _atomic_write(path, doc.gltf_to_json().encode("utf-8"))


def skin_influences(mesh: Mesh, rig: Rig, weights: SkinWeights) -> tuple[np.ndarray, np.ndarray]:
    """[V, 4] bone indices and [V, 4] float32 weights as written: heaviest 4, merged, float32 rows summing to 1.

    Raises KeyDiffError for a vertex/bone count mismatch, bad values, weight on a link bone or a vertex with
    no weight at all (glTF requires every skinned vertex to be influenced).
    """
    if weights.num_vertices != mesh.num_vertices:
        raise KeyDiffError(
            "invalid_argument", f"skin weights cover {weights.num_vertices} vertices but the mesh has {mesh.num_vertices}"
        )
    if weights.num_bones != rig.num_bones:
        raise KeyDiffError("invalid_argument", f"skin weights are for {weights.num_bones} bones but the rig has {rig.num_bones}")
    bones = np.asarray(weights.indices, np.int64)
    values = np.asarray(weights.weights, np.float64)
    if not np.isfinite(values).all() or (values < 0).any():
        raise KeyDiffError("invalid_argument", "skin weights contain NaN, infinite or negative values")
    on_link = (values > 0) & ~rig.bone_deforms[bones]
    if on_link.any():
        bone = int(bones[on_link][0])
        raise KeyDiffError(
            "invalid_argument", f"{int(on_link.any(axis=1).sum())} vertices weight non-deforming bone {rig.bone_names[bone]!r}"
        )
    bones, values = bones.copy(), values.copy()
    width = bones.shape[1]
    for i in range(width):                      # merge slots that name the same bone (k is small)
        for j in range(i + 1, width):
            same = (bones[:, i] == bones[:, j]) & (values[:, j] > 0)
            values[same, i] += values[same, j]
            values[same, j] = 0.0
    order = np.argsort(-values, axis=1, kind="stable")[:, :MAX_INFLUENCES]
    bones, values = np.take_along_axis(bones, order, 1), np.take_along_axis(values, order, 1)
    if width < MAX_INFLUENCES:
        pad = MAX_INFLUENCES - width
        bones = np.pad(bones, ((0, 0), (0, pad)))
        values = np.pad(values, ((0, 0), (0, pad)))
    totals = values.sum(axis=1)
    if (totals <= 0).any():
        raise KeyDiffError("invalid_argument", f"{int((totals <= 0).sum())} vertices have no bone weight; glTF needs one")
    normalised = (values / totals[:, None]).astype(np.float32)
    # Put float32 rounding into the heaviest slot so each stored row sums to 1 as closely as float32 allows.
    rest = normalised[:, 1:].astype(np.float64).sum(axis=1)
    normalised[:, 0] = (1.0 - rest).astype(np.float32)
    bones = np.where(normalised > 0, bones, 0)                   # unused slots: joint 0, weight 0
    return bones, normalised


# --- document ---------------------------------------------------------------------------------------------
def _document(builder: "_Builder", mesh: Mesh, rig: Rig, joints: np.ndarray, weights: np.ndarray, name: str):
    to_gltf = WORLD_TO_GLTF[:3, :3]
    positions = (mesh.vertices @ to_gltf.T).astype(np.float32)               # [V, 3]
    attributes = pygltflib.Attributes(
        POSITION=builder.accessor(positions, _ARRAY_BUFFER, bounds=True),
        NORMAL=builder.accessor(_unit_normals(mesh) @ to_gltf.T.astype(np.float32), _ARRAY_BUFFER),
    )
    textured = mesh.uvs is not None and mesh.texture is not None
    if textured:
        attributes.TEXCOORD_0 = builder.accessor(mesh.uvs.astype(np.float32), _ARRAY_BUFFER)
    if mesh.colors is not None:
        attributes.COLOR_0 = builder.accessor(np.clip(mesh.colors, 0.0, 1.0).astype(np.float32), _ARRAY_BUFFER)
    joint_type = np.uint8 if rig.num_bones <= 256 else np.uint16
    attributes.JOINTS_0 = builder.accessor(joints.astype(joint_type), _ARRAY_BUFFER)
    attributes.WEIGHTS_0 = builder.accessor(weights, _ARRAY_BUFFER)
    index_type = np.uint16 if mesh.num_vertices <= 65535 else np.uint32
    indices = builder.accessor(mesh.faces.astype(index_type).reshape(-1, 1), _ELEMENT_ARRAY_BUFFER)

    doc = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator="KeyDiff3D for Blender"))
    pbr = pygltflib.PbrMetallicRoughness(baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=ROUGHNESS)
    if textured:
        doc.images = [pygltflib.Image(bufferView=builder.view(_png(mesh.texture)), mimeType="image/png")]
        doc.samplers = [pygltflib.Sampler(magFilter=9729, minFilter=9987, wrapS=10497, wrapT=10497)]
        doc.textures = [pygltflib.Texture(sampler=0, source=0)]
        pbr.baseColorTexture = pygltflib.TextureInfo(index=0)
    doc.materials = [pygltflib.Material(name=f"{name}_material", pbrMetallicRoughness=pbr)]
    doc.meshes = [pygltflib.Mesh(name=name, primitives=[
        pygltflib.Primitive(attributes=attributes, indices=indices, material=0, mode=4)
    ])]

    heads = rig.bone_heads @ to_gltf.T                                       # [B, 3]
    tails = rig.bone_tails @ to_gltf.T
    bone_parents = rig.bone_parents
    parent_heads = np.where(bone_parents[:, None] >= 0, heads[np.maximum(bone_parents, 0)], 0.0)
    first_bone = 1                                                           # node 0 is the armature
    tail_joints = rig.bone_tail_joint
    bone_nodes = []
    for b in range(rig.num_bones):                                           # B nodes, not V: cheap
        bone_nodes.append(pygltflib.Node(
            name=rig.bone_names[b],
            translation=_floats(heads[b] - parent_heads[b]),
            children=[first_bone + int(c) for c in np.flatnonzero(bone_parents == b)],
            extras={EXTRAS_KEY: {
                "tail": _floats(tails[b] - heads[b]), "deform": bool(rig.bone_deforms[b]), "bone": b,
                "tail_joint": rig.names[int(tail_joints[b])],
            }},
        ))
    armature = pygltflib.Node(
        name=f"{name}_armature", children=[first_bone + int(c) for c in np.flatnonzero(bone_parents < 0)]
    )
    mesh_node = pygltflib.Node(name=name, mesh=0, skin=0)
    doc.nodes = [armature, *bone_nodes, mesh_node]
    inverse_binds = np.tile(np.eye(4, dtype=np.float32), (rig.num_bones, 1, 1))
    inverse_binds[:, :3, 3] = -heads
    doc.skins = [pygltflib.Skin(
        name=f"{name}_skin", skeleton=0, joints=list(range(first_bone, first_bone + rig.num_bones)),
        inverseBindMatrices=builder.accessor(inverse_binds.transpose(0, 2, 1).reshape(-1, 16), None, kind="MAT4"),
        extras={EXTRAS_KEY: {"root_joint": rig.names[rig.root], "root_joint_index": rig.root}},
    )]
    doc.scenes = [pygltflib.Scene(name=name, nodes=[0, len(doc.nodes) - 1])]
    doc.scene = 0
    doc.accessors, doc.bufferViews = builder.accessors, builder.views
    return doc


def _unit_normals(mesh: Mesh) -> np.ndarray:
    """[V, 3] float32 normals of unit length (the validator checks); computed from faces when missing."""
    normals = mesh.normals if mesh.normals is not None else _face_normals_per_vertex(mesh.vertices, mesh.faces)
    normals = np.asarray(normals, np.float64)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 1e-12, normals / np.maximum(length, 1e-12), np.array([0.0, 0.0, 1.0]))
    return normals.astype(np.float32)


def _face_normals_per_vertex(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals with bincount (much faster than np.add.at on large meshes)."""
    face_n = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    flat = faces.ravel()
    out = np.empty((len(vertices), 3))
    for axis in range(3):
        out[:, axis] = np.bincount(flat, weights=np.repeat(face_n[:, axis], 3), minlength=len(vertices))
    return out


def _png(texture: np.ndarray) -> bytes:
    from PIL import Image

    if texture.dtype != np.uint8 or texture.ndim != 3 or texture.shape[2] not in (3, 4):
        raise KeyDiffError("invalid_image", f"texture must be uint8 [H, W, 3|4], got {texture.dtype} {texture.shape}")
    out = io.BytesIO()
    Image.fromarray(texture).save(out, format="PNG", compress_level=3)
    return out.getvalue()


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


# --- binary buffer ----------------------------------------------------------------------------------------
_COMPONENT = {np.dtype(np.uint8): 5121, np.dtype(np.uint16): 5123, np.dtype(np.uint32): 5125, np.dtype(np.float32): 5126}
_TYPE = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}


@dataclass
class _Builder:
    """Collects bytes into one 4-byte aligned buffer and the bufferViews/accessors that describe them."""

    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    views: list = field(default_factory=list)
    accessors: list = field(default_factory=list)

    def view(self, data: bytes, target: int | None = None) -> int:
        self.views.append(pygltflib.BufferView(buffer=0, byteOffset=self.size, byteLength=len(data), target=target))
        pad = -len(data) % 4
        self.chunks.append(data + b"\x00" * pad)
        self.size += len(data) + pad
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, target: int | None, *, bounds: bool = False, kind: str | None = None) -> int:
        array = np.ascontiguousarray(array)
        view = self.view(array.tobytes(), target)
        accessor = pygltflib.Accessor(
            bufferView=view, componentType=_COMPONENT[array.dtype], count=int(array.shape[0]),
            type=kind or _TYPE[array.shape[1]],
        )
        if bounds:
            accessor.min = _floats(array.min(axis=0))
            accessor.max = _floats(array.max(axis=0))
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def blob(self) -> bytes:
        return b"".join(self.chunks)


def _atomic_write(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise KeyDiffError("output_not_writable", f"cannot write {path}: {exc.strerror or exc}") from exc
