"""Synthetic dataset generation rate (samples per minute) and the docs' contact sheet of generated bodies.

Writes a real dataset (default: 24 samples, 4 per category, 21 views, at 256 px and again at 128 px; CMU
mocap for humans when ../shared/data/mocap exists) into a temporary folder, times it end to end and per stage
(build + pose, render), then redraws docs/images/synthetic_contact_sheet.png from a few of the rendered samples.
Results: benchmarks/results/synthetic.json.

    .venv/bin/python benchmarks/synthetic.py [--n 24] [--sizes 256 128]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine_info, write_result
from PIL import Image, ImageDraw

from backend.views.render import RenderSettings
from backend.views.viewset import ViewSet
from training.synthetic.dataset import DatasetSettings, load_clips, plan, write_dataset
from training.synthetic.sample import CATEGORIES, build_sample, render_sample

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "synthetic.json"
SHEET = REPO / "docs" / "images" / "synthetic_contact_sheet.png"
MOCAP = REPO / ".." / "shared" / "data" / "mocap"
SHEET_FRAMES = (20, 3, 6, 10, 14, 17)          # the input view and five orbit views around the body


def machine() -> dict:
    return machine_info()

def stage_times(settings: DatasetSettings, clips: dict, count: int) -> dict:
    """Median seconds per stage over the first `count` samples of the plan (no files written)."""
    build, render = [], []
    for spec in plan(settings)[:count]:
        start = time.perf_counter()
        sample = build_sample(spec, clips)
        build.append(time.perf_counter() - start)
        start = time.perf_counter()
        render_sample(sample, settings.image_size, settings.frames, RenderSettings(supersample=settings.supersample))
        render.append(time.perf_counter() - start)
    return {"build_and_pose_s": round(float(np.median(build)), 3), "render_s": round(float(np.median(render)), 3)}


def contact_sheet(out: Path, record: dict, per_category: int = 1) -> np.ndarray:
    """Rows = one sample per category (labelled), columns = orbit views."""
    rows = []
    for category in CATEGORIES:
        chosen = [r for r in record["samples"] if r["category"] == category][:per_category]
        for row in chosen:
            views = ViewSet.load(out / row["path"] / "views")
            keep = [int(np.flatnonzero(views.frames == f)[0]) for f in SHEET_FRAMES if f in views.frames]
            strip = Image.fromarray(np.concatenate(list(views.images[keep]), axis=1))
            label = f"{category}" + (f"  ({row['clip_id']} frame {row['frame']})" if row["clip_id"] else "")
            ImageDraw.Draw(strip).text((4, 3), label, fill=(40, 40, 40))
            rows.append(np.asarray(strip))
    return np.concatenate(rows, axis=0)


def timed_run(settings: DatasetSettings, clips: dict, out: Path) -> tuple[dict, dict]:
    """Write one dataset into `out`; returns (timings, index record)."""
    per_category: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    last = [time.perf_counter()]

    def tick(spec) -> None:
        now = time.perf_counter()
        per_category[spec.category].append(now - last[0])
        last[0] = now

    start = time.perf_counter()
    record = write_dataset(out, settings, clips, progress=tick)
    total = time.perf_counter() - start
    disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    timings = {
        "image_size": settings.image_size, "views": len(settings.frames), "n": settings.n,
        "seconds_total": round(total, 2), "samples_per_minute": round(60.0 * settings.n / total, 1),
        "seconds_per_sample_by_category": {c: round(float(np.mean(v)), 3) for c, v in per_category.items() if v},
        "median_stage_seconds": stage_times(settings, clips, count=len(CATEGORIES)),
        "bytes_per_sample": int(disk / settings.n),
    }
    print(json.dumps(timings))
    return timings, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="samples per run (round-robin over categories)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 128], help="render sizes, one run each; "
                        "the first one draws the contact sheet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    info = machine()
    clips = load_clips(sorted(MOCAP.glob("*.bvh"))) if MOCAP.is_dir() else {}
    runs = []
    with tempfile.TemporaryDirectory(prefix="synthetic-bench-") as tmp:
        for size in args.sizes:
            settings = DatasetSettings(n=args.n, seed=args.seed, image_size=size,
                                       clip_frames={k: c.num_frames for k, c in clips.items()})
            timings, record = timed_run(settings, clips, Path(tmp) / f"ds{size}")
            runs.append(timings)
            if size == args.sizes[0]:
                SHEET.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(contact_sheet(Path(tmp) / f"ds{size}", record)).save(SHEET, optimize=True)
    result = {
        "benchmark": "training/synthetic: write a dataset end to end (build, pose, render all 21 orbit views, "
                     "PNGs, rigged glb, joints)",
        "date": datetime.date.today().isoformat(),
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "machine": info,
        "settings": {"seed": args.seed, "categories": list(CATEGORIES), "mocap_clips": sorted(clips),
                     "supersample": 1, "depths": False},
        "runs": runs,
        "contact_sheet": str(SHEET.relative_to(REPO)),
    }
    write_result(RESULTS, result)
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
