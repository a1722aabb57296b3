"""Pack a synthetic dataset folder into the training layout: one `<category>/{train,test}.npz` per category.

Training and evaluation read whole splits from one npz (`training/data.py`, "keydiff3d.kpviews"); the
generator writes one folder per sample so it can resume, be inspected and feed rigging metrics. This is the
bridge. Per category because joint counts differ between categories (a split's `joints` is [N, J, 3]).

    groups       the motion clip for mocap humans, else the body id: what evaluation holds out whole
    joint_scale  metres per canonical unit, only for categories in metres (humans), so MPJPE reads in mm

    python -m training.synthetic.pack --data DIR --out PACKED [--views 20 4 9 14]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from backend.cameras import projection_matrix
from backend.errors import KeyDiffError
from backend.views.viewset import ViewSet
from training.data import ViewsSplit, save_views

from .dataset import SPLITS


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise KeyDiffError("unreadable_file", f"{path} is missing or not valid JSON: {exc}") from exc


def pack_split(data_dir: str | Path, split: str, category: str, frames: Sequence[int] | None = None) -> ViewsSplit:
    """Every sample of `category` in `split` as one ViewsSplit, views ordered as `frames` (default: input
    view 20 first, then the others as rendered)."""
    data_dir = Path(data_dir)
    rows = [r for r in _read_json(data_dir / "index.json")["samples"] if r["split"] == split and r["category"] == category]
    if not rows:
        raise KeyDiffError("invalid_argument", f"{data_dir} has no {split} samples of category {category!r}")
    images, masks, projections, joints, groups, scales = [], [], [], [], [], []
    names, order, size, rendered, wanted = None, None, None, None, None
    for row in rows:
        folder = data_dir / row["path"]
        meta = _read_json(folder / "joints.json")
        views = ViewSet.load(folder / "views")
        if order is None:
            rendered = views.frames.tolist()
            wanted = list(frames) if frames is not None else [20] + [f for f in rendered if f != 20]
            missing = [f for f in wanted if f not in rendered]
            if missing:
                raise KeyDiffError("invalid_argument", f"samples were rendered from orbit frames {rendered}, not {missing}")
            order = [rendered.index(f) for f in wanted]
            names, size = meta["names"], views.size
        if meta["names"] != names or views.size != size or views.frames.tolist() != rendered:
            raise KeyDiffError("invalid_argument", f"sample {row['id']} differs in joints or views from the first "
                                                   f"{category} sample; one split needs one skeleton and one view set")
        images.append(views.images[order])
        masks.append(views.masks[order].astype(np.uint8))
        projections.append(np.stack([projection_matrix(views.cameras[i]) for i in order]))
        joints.append(meta["joints_canonical"])
        groups.append(row["clip_id"] or row["body_id"])
        to_canonical = np.asarray(meta["body_to_canonical"])
        scales.append(1.0 / np.cbrt(np.linalg.det(to_canonical[:3, :3])) if meta["body_units"] == "metres" else np.nan)
    metric = not np.isnan(scales).any()
    width, height = size
    return ViewsSplit(
        images=np.stack(images), masks=np.stack(masks), projections=np.stack(projections).astype(np.float32),
        image_size=(height, width), frames=np.asarray(wanted, dtype=np.int64),
        joints=np.asarray(joints, dtype=np.float32), groups=np.asarray(groups), categories=np.asarray([category] * len(rows)),
        joint_names=np.asarray(names), joint_scale=np.asarray(scales, dtype=np.float32) if metric else None,
    )


def pack_dataset(data_dir: str | Path, out_dir: str | Path, frames: Sequence[int] | None = None) -> list[Path]:
    """Write `<out>/<category>/<split>.npz` for every category and split present; returns the files."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    rows = _read_json(data_dir / "index.json")["samples"]
    written = []
    for category in sorted({r["category"] for r in rows}):
        for split in SPLITS:
            if any(r["category"] == category and r["split"] == split for r in rows):
                path = out_dir / category / f"{split}.npz"
                save_views(pack_split(data_dir, split, category, frames), path)
                written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pack a synthetic dataset into per-category train/test npz files.")
    parser.add_argument("--data", required=True, type=Path, help="folder written by training/make_synthetic.py")
    parser.add_argument("--out", required=True, type=Path, help="output folder (one sub-folder per category)")
    parser.add_argument("--views", type=int, nargs="+", default=None,
                        help="orbit frames to keep, input view first (default: 20, then all others)")
    args = parser.parse_args(argv)
    try:
        for path in pack_dataset(args.data, args.out, args.views):
            print(path, file=sys.stderr)
    except KeyDiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
