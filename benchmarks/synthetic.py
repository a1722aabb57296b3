"""Synthetic dataset generation rate (samples per minute) and the docs' contact sheet of generated bodies.

Writes a real dataset (default: 24 samples, 4 per category, 21 views at 256 px, CMU mocap for humans when
../shared/data/mocap exists) into a temporary folder, times it end to end and per stage (build + pose,
render, files), then redraws docs/images/synthetic_contact_sheet.png from a few of the rendered samples.
Results: benchmarks/results/synthetic.json.

    .venv/bin/python benchmarks/synthetic.py [--n 24] [--size 256]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
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
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
            "python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="samples to generate (round-robin over categories)")
    parser.add_argument("--size", type=int, default=256, help="render size in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    info = machine()
    clips = load_clips(sorted(MOCAP.glob("*.bvh"))) if MOCAP.is_dir() else {}
    settings = DatasetSettings(n=args.n, seed=args.seed, image_size=args.size, test_fraction=0.2,
                               clip_frames={k: c.num_frames for k, c in clips.items()})
    stages = stage_times(settings, clips, count=len(CATEGORIES))
    with tempfile.TemporaryDirectory(prefix="synthetic-bench-") as tmp:
        out = Path(tmp) / "ds"
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
        SHEET.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(contact_sheet(out, record)).save(SHEET, optimize=True)
    result = {
        "benchmark": "training/synthetic: write a dataset end to end (build, pose, render 21 views, PNGs, glb)",
        "date": datetime.date.today().isoformat(),
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "machine": info,
        "settings": {"n": args.n, "image_size": args.size, "views": len(settings.frames), "seed": args.seed,
                     "categories": list(settings.categories), "mocap_clips": sorted(clips)},
        "seconds_total": round(total, 2),
        "samples_per_minute": round(60.0 * args.n / total, 1),
        "seconds_per_sample_by_category": {c: round(float(np.mean(v)), 3) for c, v in per_category.items() if v},
        "median_stage_seconds": stages,
        "bytes_per_sample": int(disk / args.n),
        "contact_sheet": str(SHEET.relative_to(REPO)),
    }
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = RESULTS.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(result, indent=2) + "\n")
    tmp_path.replace(RESULTS)
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
