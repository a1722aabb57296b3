"""A picture for docs: characters posed with each skinning method side by side, coloured by deformation error.

Each row is one character in one benchmark pose; the first column deforms with the artist's weights, the
others with each method's, every vertex tinted from grey (exact) to red (≥ RED_AT unit-cube units away from
where the artist's weights put it). Rendered with our CPU ray-casting renderer (backend/views/render.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from backend.cameras import look_at_camera
from backend.mesh import Mesh
from backend.metrics.skinning import deform
from backend.views.render import RenderSettings, render_views

RED_AT = 0.1            # error (unit-cube units, longest side = 2) drawn fully red
TILE = 220              # pixels per view
GREY, RED = np.array([0.7, 0.7, 0.7]), np.array([0.85, 0.08, 0.05])


def comparison_image(rows: list[dict], out: Path) -> Path:
    """rows: {"name", "vertices" [V, 3], "faces", "pose" [B, 4, 4], "weights": {label: [V, B]}} with "artist" first."""
    labels = list(rows[0]["weights"])
    header = 26
    sheet = Image.new("RGB", (TILE * len(labels), header + TILE * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(labels):
        draw.text((c * TILE + 8, 6), label, fill="black")
    camera = look_at_camera(eye=(2.6, -3.6, 1.6), target=(0.0, 0.0, 0.0), width=TILE)
    for r, row in enumerate(rows):
        truth = deform(row["vertices"], row["weights"]["artist"], row["pose"])
        for c, label in enumerate(labels):
            posed = deform(row["vertices"], row["weights"][label], row["pose"])
            error = np.linalg.norm(posed - truth, axis=1)
            tint = np.clip(error / RED_AT, 0.0, 1.0)[:, None]
            colors = np.concatenate([GREY * (1 - tint) + RED * tint, np.ones((len(posed), 1))], axis=1)
            mesh = Mesh(posed, row["faces"], colors=colors.astype(np.float32))
            views = render_views(mesh, [camera], settings=RenderSettings(supersample=2))
            tile = Image.fromarray(_to_uint8(views.images[0]))
            sheet.paste(tile, (c * TILE, header + r * TILE))
            if label != "artist":
                draw.text((c * TILE + 8, header + r * TILE + TILE - 18), f"mean {error.mean():.3f}", fill="black")
        draw.text((6, header + r * TILE + 4), row["name"], fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    sheet.save(tmp)
    tmp.replace(out)
    return out


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image[..., :3]
    return (np.clip(image[..., :3], 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
