"""Pictures of what the network found: keypoints and learned edges drawn over the views they came from."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from backend.keypoints.volume import project_points


def draw_keypoints_on_views(images: np.ndarray, projections: np.ndarray, image_size: tuple[int, int], keypoints: np.ndarray,
                            adjacency: np.ndarray, scale: int = 2, edge_quantile: float = 0.75) -> Image.Image:
    """One row: each view with the projected keypoints (dots) and the strongest learned edges (lines).

    images [V, S, S, 3] uint8; projections [V, 3, 4]; keypoints [K, 3]; adjacency [K, K]. Edges at or above
    the `edge_quantile` of the off-diagonal weights are drawn, thicker and darker for larger weights.
    """
    import torch

    views, size = images.shape[0], images.shape[1]
    uv, _ = project_points(torch.as_tensor(keypoints, dtype=torch.float32)[None], torch.as_tensor(projections, dtype=torch.float32)[None])
    uv = uv[0].numpy() * np.array([size / image_size[1], size / image_size[0]]) * scale  # [V, K, 2] canvas pixels
    upper = np.triu_indices(len(keypoints), 1)
    weights = adjacency[upper]
    threshold = np.quantile(weights, edge_quantile)
    strongest = weights.max() if weights.max() > 0 else 1.0
    canvas = Image.new("RGB", (views * size * scale, size * scale), "white")
    colours = [tuple(int(255 * c) for c in rgb) for rgb in _palette(len(keypoints))]
    for v in range(views):
        tile = Image.fromarray(images[v]).resize((size * scale, size * scale), Image.NEAREST)
        draw = ImageDraw.Draw(tile)
        for (i, j), weight in zip(zip(*upper), weights):
            if weight >= threshold:
                shade = int(200 * (1 - weight / strongest))
                draw.line([tuple(uv[v, i]), tuple(uv[v, j])], fill=(shade, shade, shade), width=max(1, int(3 * weight / strongest)))
        for k in range(len(keypoints)):
            x, y = uv[v, k]
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colours[k], outline=(0, 0, 0))
        canvas.paste(tile, (v * size * scale, 0))
    return canvas


def _palette(count: int) -> np.ndarray:
    hues = np.linspace(0, 1, count, endpoint=False)
    k = (np.array([5.0, 3.0, 1.0])[None] + hues[:, None] * 6) % 6
    return 1 - np.clip(np.minimum(k, 4 - k), 0, 1)  # HSV(h, 1, 1) -> RGB
