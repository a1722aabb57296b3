"""Write the bad-input corpus: files a user could really hand us, each of which must fail cleanly.

    python tests/data/make_bad_inputs.py [OUT]      (default: tests/data/bad_inputs, git-ignored)

Made by this script, never by hand, so the corpus is reproducible and reviewable; the tests call `make_corpus`
into a temporary folder. Each entry: file name -> the stable error code the backend must answer with.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent

MESH_CASES: dict[str, str] = {
    "empty.glb": "unreadable_file",
    "text_named.glb": "unreadable_file",
    "truncated.glb": "unreadable_file",
    "no_faces.ply": "invalid_mesh",
    "nan_vertices.obj": "invalid_mesh",
    "two_million_faces.ply": "invalid_mesh",
}

IMAGE_CASES: dict[str, str] = {
    "empty.png": "invalid_image",
    "truncated.png": "invalid_image",
    "text_named.png": "invalid_image",
    "one_pixel.png": "invalid_image",          # 1 x 1: nothing to see
    "huge_header.png": "invalid_image",
    "transparent.png": "invalid_image",
}

# Unusual but valid encodings: they must be decoded, not rejected.
VALID_ODD_IMAGES = ("grayscale.png", "sixteen_bit.png", "cmyk.jpg")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _object_image(size: int = 64) -> np.ndarray:
    """An RGBA cut-out: an opaque orange disc on a transparent background."""
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = (230, 120, 30, 255)
    return rgba


def make_corpus(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    # meshes
    (out / "empty.glb").write_bytes(b"")
    (out / "text_named.glb").write_text("this is a shopping list, not a mesh\n")
    import trimesh

    buffer = io.BytesIO()
    trimesh.creation.icosphere(subdivisions=2).export(buffer, file_type="glb")
    (out / "truncated.glb").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (out / "no_faces.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "end_header\n0 0 0\n1 0 0\n0 1 0\n"
    )
    (out / "nan_vertices.obj").write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\n")
    _write_big_ply(out / "two_million_faces.ply", num_faces=2_000_000)
    # images
    (out / "empty.png").write_bytes(b"")
    png = io.BytesIO()
    Image.fromarray(_object_image()).save(png, format="PNG")
    (out / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (out / "text_named.png").write_text("not an image\n")
    Image.new("RGBA", (1, 1), (255, 0, 0, 255)).save(out / "one_pixel.png")
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 6, 0, 0, 0)   # 20000 x 20000 RGBA, no pixel data
    (out / "huge_header.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                                          + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b""))
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(out / "transparent.png")
    rgba = _object_image()
    Image.fromarray(rgba[..., :3]).convert("L").save(out / "grayscale.png")
    Image.fromarray(rgba[..., 0].astype(np.uint16) * 257).save(out / "sixteen_bit.png")   # 16-bit grey
    Image.fromarray(rgba[..., :3]).convert("CMYK").save(out / "cmyk.jpg", quality=95)
    return out


def _write_big_ply(path: Path, num_faces: int) -> None:
    """A binary PLY triangle strip with `num_faces` faces, written with numpy (seconds, ~40 MB)."""
    num_vertices = num_faces + 2
    t = np.arange(num_vertices, dtype=np.float32)
    vertices = np.column_stack([t * 1e-3, (t % 2).astype(np.float32), np.zeros_like(t)]).astype("<f4")
    i = np.arange(num_faces, dtype=np.int32)
    faces = np.zeros(num_faces, dtype=[("n", "u1"), ("a", "<i4"), ("b", "<i4"), ("c", "<i4")])
    faces["n"], faces["a"], faces["b"], faces["c"] = 3, i, i + 1, i + 2
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {num_vertices}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {num_faces}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with path.open("wb") as f:
        f.write(header.encode())
        f.write(vertices.tobytes())
        f.write(faces.tobytes())


if __name__ == "__main__":
    print(make_corpus(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "bad_inputs"))
