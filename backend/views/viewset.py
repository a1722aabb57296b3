"""ViewSet: N images of one object with their cameras, the common currency of SV3D and our mesh renderer.

Folder layout (the bundle's optional `views/` uses it too), every file indexed by position n = 0..N-1:

    cameras.json     {"format": "keydiff3d.views", "version": 1, "frames": [...], "cameras": [Camera.to_dict()...],
                      "has_depths": bool}
    000.png ...      RGB images, object on white, sRGB
    000_mask.png ... 8-bit masks, 255 = object, 0 = background
    depths.npz       optional: key "depths", float32 [N, H, W], camera z in metres, 0 where empty

`frames[n]` is the SV3D-p orbit frame (0..20, 20 = input view) view n shows, or -1 for a camera off the orbit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..cameras import ORBIT_FRAMES, Camera
from ..atomic import atomic_output_folder
from ..errors import KeyDiffError

VIEWS_FORMAT = "keydiff3d.views"
VIEWS_VERSION = 1
NOT_ON_ORBIT = -1


@dataclass(frozen=True, eq=False)
class ViewSet:
    images: np.ndarray              # [N, H, W, 3] uint8, sRGB, white where empty
    masks: np.ndarray               # [N, H, W] bool, True on the object
    cameras: tuple[Camera, ...]     # [N], each W x H
    frames: np.ndarray              # [N] int64, orbit frame index or NOT_ON_ORBIT
    depths: np.ndarray | None = None  # [N, H, W] float32, camera z (metres) where masked, 0 elsewhere

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        masks = np.asarray(self.masks).astype(bool)
        frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        cameras = tuple(self.cameras)
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8 or images.shape[0] == 0:
            raise KeyDiffError("invalid_image", f"images must be uint8 [N, H, W, 3] with N > 0, got "
                                                f"{images.dtype} {images.shape}")
        num, height, width = images.shape[:3]
        if masks.shape != (num, height, width):
            raise KeyDiffError("invalid_image", f"masks must have shape {(num, height, width)}, got {masks.shape}")
        if len(cameras) != num or frames.shape != (num,):
            raise KeyDiffError("invalid_argument", f"need {num} cameras and frames, got {len(cameras)} and "
                                                   f"{frames.shape[0]}")
        if any((c.width, c.height) != (width, height) for c in cameras):
            raise KeyDiffError("invalid_argument", f"every camera must be {width}x{height} like the images")
        if ((frames < NOT_ON_ORBIT) | (frames >= ORBIT_FRAMES)).any():
            raise KeyDiffError("invalid_argument", f"frames must lie in [-1, {ORBIT_FRAMES - 1}], got "
                                                   f"{frames.tolist()}")
        depths = None
        if self.depths is not None:
            depths = np.asarray(self.depths, dtype=np.float32)
            if depths.shape != (num, height, width) or not np.isfinite(depths).all():
                raise KeyDiffError("invalid_argument", f"depths must be finite float32 {(num, height, width)}, "
                                                       f"got {depths.shape}")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "cameras", cameras)
        object.__setattr__(self, "depths", depths)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every view."""
        return int(self.images.shape[2]), int(self.images.shape[1])

    def subset(self, indices: Sequence[int]) -> "ViewSet":
        """The views at the given positions, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        return ViewSet(images=self.images[idx], masks=self.masks[idx], cameras=[self.cameras[i] for i in idx],
                       frames=self.frames[idx], depths=None if self.depths is None else self.depths[idx])

    def save(self, folder: str | Path) -> Path:
        """Write the documented layout to `folder` atomically (a temp folder renamed into place).

        An existing folder is replaced only once the new one is complete, and only if it is empty or an earlier
        views folder.
        """
        folder = Path(folder)
        with atomic_output_folder(folder, marker="cameras.json", what="views folder") as tmp:
            for n in range(len(self)):
                Image.fromarray(self.images[n], "RGB").save(tmp / f"{n:03d}.png")
                Image.fromarray(self.masks[n].astype(np.uint8) * 255, "L").save(tmp / f"{n:03d}_mask.png")
            if self.depths is not None:
                np.savez_compressed(tmp / "depths.npz", depths=self.depths)
            meta = {"format": VIEWS_FORMAT, "version": VIEWS_VERSION, "frames": self.frames.tolist(),
                    "cameras": [c.to_dict() for c in self.cameras], "has_depths": self.depths is not None}
            (tmp / "cameras.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "ViewSet":
        """Read a folder written by `save` (or by the SV3D path)."""
        folder = Path(folder)
        meta_path = folder / "cameras.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise KeyDiffError("unreadable_file", f"{meta_path} is missing or not valid JSON: {exc}") from exc
        if meta.get("format") != VIEWS_FORMAT or meta.get("version") != VIEWS_VERSION:
            raise KeyDiffError("unreadable_file", f"{meta_path} is not {VIEWS_FORMAT} v{VIEWS_VERSION}, got "
                                                  f"{meta.get('format')!r} v{meta.get('version')!r}")
        cameras = [Camera.from_dict(c) for c in meta["cameras"]]
        images, masks = [], []
        for n in range(len(cameras)):
            images.append(_read_png(folder / f"{n:03d}.png", "RGB"))
            masks.append(_read_png(folder / f"{n:03d}_mask.png", "L") > 127)
        depths = None
        if meta.get("has_depths"):
            try:
                with np.load(folder / "depths.npz") as data:
                    depths = data["depths"]
            except (OSError, KeyError, ValueError) as exc:
                raise KeyDiffError("unreadable_file", f"{folder / 'depths.npz'} is missing or corrupt") from exc
        return cls(images=np.stack(images), masks=np.stack(masks), cameras=cameras,
                   frames=np.asarray(meta["frames"]), depths=depths)


def contact_sheet(views: ViewSet, columns: int | None = None, labels: bool = True) -> np.ndarray:
    """All views tiled in a grid [rows * H, columns * W, 3] uint8 (white gaps), labelled with the orbit frame
    and its azimuth; for previews and docs, so a reader sees the orbit convention at a glance."""
    from PIL import ImageDraw

    from ..cameras import orbit_azimuths_deg

    num = len(views)
    columns = min(num, 7) if columns is None else max(1, int(columns))
    rows = -(-num // columns)
    width, height = views.size
    sheet = Image.new("RGB", (columns * width, rows * height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    azimuths = orbit_azimuths_deg()
    for n in range(num):
        x, y = (n % columns) * width, (n // columns) * height
        sheet.paste(Image.fromarray(views.images[n]), (x, y))
        if labels:
            frame = int(views.frames[n])
            text = f"frame {frame}  az {azimuths[frame]:.0f}" if frame >= 0 else f"view {n}"
            draw.text((x + 4, y + 3), text, fill=(60, 60, 60))
    return np.asarray(sheet)


def _read_png(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except OSError as exc:
        raise KeyDiffError("unreadable_file", f"{path} is missing or not a readable image") from exc
