"""Build a training cache for a new category: photo → preprocessing → SV3D-p orbit → decoder features.

    python training/prepare.py --images DIR --out CACHE [--shard I/N] [--weights PATH_OR_ID] [--steps 50]

Each photo (png/jpg/jpeg/webp under DIR, recursively) becomes one item folder CACHE/<item>/ in the
`keydiff3d generate` layout (views/ ViewSet, features.safetensors, generate.json); <item> is the photo's path
relative to DIR without its suffix, "/" replaced by "__". An item is finished when its generate.json exists:
run_generate writes the whole folder under a temporary name and renames it at the end, so a killed run
leaves no half item and rerunning the same command resumes where it stopped.

Sharding: items are sorted by name and shard I of N takes every N-th item starting at I, so N processes
(or machines sharing CACHE) split the work without talking to each other. Failures of single photos (a
corrupt file, no alpha and no rembg) are listed in CACHE/failed-<I>-of-<N>.json and do not stop the shard.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `backend` and `training` importable from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def list_items(images: Path) -> list[tuple[str, Path]]:
    """(item name, photo path) for every photo under `images`, sorted by item name."""
    items = {}
    for path in sorted(images.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            name = path.relative_to(images).with_suffix("").as_posix().replace("/", "__")
            if name in items:  # a.png and a.jpg side by side: keep both, distinguishable
                name = f"{name}.{path.suffix.lower().lstrip('.')}"
            items[name] = path
    return sorted(items.items())


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' with 0 <= I < N."""
    from backend.errors import KeyDiffError

    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise KeyDiffError("invalid_argument", f"--shard {text!r}; expected I/N such as 0/4") from exc
    if not (count >= 1 and 0 <= index < count):
        raise KeyDiffError("invalid_argument", f"--shard {text!r}; expected 0 <= I < N")
    return index, count


def is_finished(item_dir: Path) -> bool:
    return (item_dir / "generate.json").is_file()


def prepare(
    images: Path,
    out: Path,
    *,
    shard: tuple[int, int] = (0, 1),
    weights: str | None = None,
    steps: int = 50,
    elevation: float = 10.0,
    seed: int = 0,
    device: str | None = None,
    feature_views: int = 4,
    tau: float = 500.0,
    log=print,
) -> dict:
    """Process this shard's unfinished items; returns counts {done, skipped, failed} and the failures."""
    from backend.errors import KeyDiffError
    from backend.views.sv3d import run_generate
    from backend.views.sv3d_models import load_sv3d_models

    if not images.is_dir():
        raise KeyDiffError("unreadable_file", f"--images {str(images)!r} is not a folder of photos")
    index, count = shard
    mine = list_items(images)[index::count]
    todo = [(name, path) for name, path in mine if not is_finished(out / name)]
    log(f"shard {index}/{count}: {len(mine)} items, {len(mine) - len(todo)} already finished, {len(todo)} to do")
    summary = {"done": 0, "skipped": len(mine) - len(todo), "failed": 0, "failures": {}}
    if not todo:
        return summary
    out.mkdir(parents=True, exist_ok=True)
    models = load_sv3d_models(weights, device=device)  # once per process, only when there is work
    for number, (name, path) in enumerate(todo, start=1):
        started = time.perf_counter()
        try:
            run_generate(
                path, out / name, steps=steps, elevation=elevation, seed=seed, feature_views=feature_views,
                tau=tau, models=models,
            )
        except KeyDiffError as exc:
            summary["failed"] += 1
            summary["failures"][name] = str(exc)
            log(f"[{number}/{len(todo)}] {name}: FAILED {exc}")
            continue
        summary["done"] += 1
        log(f"[{number}/{len(todo)}] {name}: {time.perf_counter() - started:.1f} s")
    if summary["failures"]:
        report = out / f"failed-{index}-of-{count}.json"
        fd, tmp = tempfile.mkstemp(prefix=".failed-", dir=out)
        with os.fdopen(fd, "w") as handle:
            json.dump(summary["failures"], handle, indent=1)
        os.replace(tmp, report)
    return summary


@dataclass
class PreparedItem:
    """One finished cache item, restricted to its feature views (the keypoint network's V views)."""

    name: str
    layers: dict  # tap name -> [V, C_l, h_l, w_l] float16 (SV3DFeatures.maps)
    images: np.ndarray  # [V, S, S, 3] uint8, the generated views of the feature frames (input view first)
    masks: np.ndarray  # [V, S, S] bool
    projections: np.ndarray  # [V, 3, 4] P = K[R|t] of those views (backend.cameras convention)
    frames: list[int]  # [V] orbit frames


def load_prepared(out: Path) -> list[PreparedItem]:
    """Every finished item of a cache, as the `sv3d` backbone's training input (sorted by name).

    The views are those whose features were captured, in the features' order, so layer v, image v and
    projection v describe the same orbit frame.
    """
    from backend.cameras import stack_cameras
    from backend.views.sv3d_features import FEATURES_FILENAME, load_features
    from backend.views.viewset import ViewSet

    items = []
    for item_dir in sorted(p for p in Path(out).iterdir() if p.is_dir() and is_finished(p)):
        features = load_features(item_dir / FEATURES_FILENAME)
        views = ViewSet.load(item_dir / "views")
        positions = [int(np.flatnonzero(views.frames == f)[0]) for f in features.frames]
        chosen = views.subset(positions)
        items.append(
            PreparedItem(
                name=item_dir.name,
                layers=features.maps,
                images=chosen.images,
                masks=chosen.masks,
                projections=stack_cameras(chosen.cameras).projection,
                frames=list(features.frames),
            )
        )
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="folder of photos (RGBA cut-outs, or any photo with rembg)")
    parser.add_argument("--out", type=Path, required=True, help="cache folder (one subfolder per photo)")
    parser.add_argument("--shard", default="0/1", help="I/N: process every N-th photo starting at I (default 0/1)")
    parser.add_argument("--weights", default=None, help="SV3D-p folder or hub id (default $KEYDIFF3D_SV3D_WEIGHTS)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--elevation", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    parser.add_argument("--feature-views", type=int, default=4)
    parser.add_argument("--tau", type=float, default=500.0, help="feature timestep of 1000 (paper: 500)")
    args = parser.parse_args(argv)

    from backend.errors import KeyDiffError

    try:
        summary = prepare(
            args.images, args.out, shard=parse_shard(args.shard), weights=args.weights, steps=args.steps,
            elevation=args.elevation, seed=args.seed, device=args.device, feature_views=args.feature_views,
            tau=args.tau, log=lambda message: print(message, file=sys.stderr),
        )
    except KeyDiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
