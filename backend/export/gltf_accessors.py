"""Decode a glTF document's binary data: buffers (GLB chunk, data URI, external file), accessors, images.

One vectorised path for every accessor layout the spec allows (byte strides, normalised integers, sparse
substitution, accessors without a buffer view), so the reader never loops over elements in Python.
"""

from __future__ import annotations

import base64
import io
import urllib.parse
from pathlib import Path

import numpy as np
import pygltflib

from ..errors import KeyDiffError

COMPONENT_DTYPES = {
    pygltflib.BYTE: np.int8,
    pygltflib.UNSIGNED_BYTE: np.uint8,
    pygltflib.SHORT: np.int16,
    pygltflib.UNSIGNED_SHORT: np.uint16,
    pygltflib.UNSIGNED_INT: np.uint32,
    pygltflib.FLOAT: np.float32,
}
TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}

# Normalised integers map to [-1, 1] / [0, 1] as the spec says (signed: max(c / MAX, -1)).
_NORMALISERS = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0, np.uint32: 4294967295.0}


class GltfData:
    """Binary access to one loaded document; `path` is used to resolve external URIs."""

    def __init__(self, gltf: pygltflib.GLTF2, path: Path) -> None:
        self.gltf = gltf
        self.path = path
        self._buffers: dict[int, bytes] = {}

    # --- buffers --------------------------------------------------------------------------------------
    def buffer(self, index: int) -> bytes:
        if index not in self._buffers:
            self._buffers[index] = self._load_buffer(index)
        return self._buffers[index]

    def _load_buffer(self, index: int) -> bytes:
        buf = self.gltf.buffers[index]
        if buf.uri is None:
            blob = self.gltf.binary_blob()
            if blob is None:
                raise KeyDiffError("unreadable_file", f"{self.path.name}: buffer {index} has no uri and no GLB chunk")
            return bytes(blob)
        data = self._read_uri(buf.uri, f"buffer {index}")
        if len(data) < buf.byteLength:
            raise KeyDiffError(
                "unreadable_file", f"{self.path.name}: buffer {index} holds {len(data)} bytes, expected {buf.byteLength}"
            )
        return data

    def _read_uri(self, uri: str, what: str) -> bytes:
        if uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            if not header.endswith(";base64"):
                return urllib.parse.unquote_to_bytes(payload)
            return base64.b64decode(payload)
        target = self.path.parent / urllib.parse.unquote(uri)
        try:
            return target.read_bytes()
        except OSError as exc:
            raise KeyDiffError("unreadable_file", f"{self.path.name}: {what} file {target} cannot be read ({exc})") from exc

    def buffer_view_bytes(self, index: int) -> memoryview:
        view = self.gltf.bufferViews[index]
        start = view.byteOffset or 0
        return memoryview(self.buffer(view.buffer))[start:start + view.byteLength]

    # --- accessors ------------------------------------------------------------------------------------
    def accessor(self, index: int, *, normalise: bool = True) -> np.ndarray:
        """[count, width] array (float64 when normalised or float, else the integer type); MAT4 -> [count, 4, 4]."""
        acc = self.gltf.accessors[index]
        dtype = COMPONENT_DTYPES.get(acc.componentType)
        width = TYPE_WIDTHS.get(acc.type)
        if dtype is None or width is None:
            raise KeyDiffError(
                "unreadable_file", f"{self.path.name}: accessor {index} has componentType {acc.componentType} / type {acc.type}"
            )
        if acc.bufferView is None:
            values = np.zeros((acc.count, width), dtype)
        else:
            values = self._strided(acc, dtype, width, index)
        if acc.sparse is not None and acc.sparse.count:
            values = self._apply_sparse(acc, values, dtype, width)
        if dtype is np.float32:
            values = values.astype(np.float64)
        elif acc.normalized and normalise:
            values = np.maximum(values.astype(np.float64) / _NORMALISERS[dtype], -1.0)
        if acc.type == "MAT4":
            return values.reshape(-1, 4, 4).transpose(0, 2, 1)   # glTF stores matrices column-major
        return values

    def _strided(self, acc, dtype, width: int, index: int) -> np.ndarray:
        view = self.gltf.bufferViews[acc.bufferView]
        raw = self.buffer_view_bytes(acc.bufferView)
        item = np.dtype(dtype).itemsize
        element = item * width
        stride = view.byteStride or element
        offset = acc.byteOffset or 0
        needed = offset + stride * (acc.count - 1) + element if acc.count else 0
        if needed > len(raw):
            raise KeyDiffError(
                "unreadable_file", f"{self.path.name}: accessor {index} needs {needed} bytes, its buffer view has {len(raw)}"
            )
        if stride == element:
            return np.frombuffer(raw, dtype, acc.count * width, offset).reshape(acc.count, width).copy()
        # Interleaved: view the bytes as rows of `stride` bytes and take each row's first `element` bytes.
        rows = np.frombuffer(raw, np.uint8, needed - offset, offset)
        rows = np.lib.stride_tricks.as_strided(rows, (acc.count, element), (stride, 1))
        return np.ascontiguousarray(rows).view(dtype).reshape(acc.count, width)

    def _apply_sparse(self, acc, values: np.ndarray, dtype, width: int) -> np.ndarray:
        sparse = acc.sparse
        idx_dtype = COMPONENT_DTYPES[sparse.indices.componentType]
        idx_raw = self.buffer_view_bytes(sparse.indices.bufferView)
        rows = np.frombuffer(idx_raw, idx_dtype, sparse.count, sparse.indices.byteOffset or 0).astype(np.int64)
        val_raw = self.buffer_view_bytes(sparse.values.bufferView)
        new = np.frombuffer(val_raw, dtype, sparse.count * width, sparse.values.byteOffset or 0).reshape(-1, width)
        if rows.size and (rows.min() < 0 or rows.max() >= acc.count):
            raise KeyDiffError("unreadable_file", f"{self.path.name}: sparse indices outside [0, {acc.count - 1}]")
        values = values.copy()
        values[rows] = new
        return values

    # --- images ---------------------------------------------------------------------------------------
    def image(self, index: int) -> np.ndarray:
        """[H, W, 3|4] uint8 sRGB pixels of image `index` (PNG or JPEG)."""
        from PIL import Image, UnidentifiedImageError

        img = self.gltf.images[index]
        if img.bufferView is not None:
            data = bytes(self.buffer_view_bytes(img.bufferView))
        elif img.uri:
            data = self._read_uri(img.uri, f"image {index}")
        else:
            raise KeyDiffError("unreadable_file", f"{self.path.name}: image {index} has neither uri nor bufferView")
        try:
            pil = Image.open(io.BytesIO(data))
            pil = pil.convert("RGBA" if "A" in pil.getbands() else "RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise KeyDiffError("invalid_image", f"{self.path.name}: image {index} cannot be decoded ({exc})") from exc
        return np.asarray(pil, dtype=np.uint8)
