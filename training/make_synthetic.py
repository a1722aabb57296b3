"""Generate a synthetic articulated-body dataset with 3D ground truth (layout: training/synthetic/dataset.py).

    python training/make_synthetic.py --out DIR --n N --seed S [--categories humanoid quadruped ...]
        [--mocap FILES...] [--size PX] [--views FRAMES...]

Humanoids are driven by the CMU clips given with --mocap (default: every .bvh in ../shared/data/mocap when
that folder exists, otherwise random poses within joint limits). The same arguments always give
byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from backend.errors import KeyDiffError
from training.synthetic.dataset import DEFAULT_TEST_CLIPS, DatasetSettings, load_clips, write_dataset
from training.synthetic.sample import CATEGORIES

DEFAULT_MOCAP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mocap"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder (created; must be empty)")
    parser.add_argument("--n", type=int, default=100, help="number of samples (round-robin over categories)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed = same bytes")
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES), choices=CATEGORIES,
                        help="body categories to generate")
    parser.add_argument("--mocap", nargs="*", type=Path, default=None,
                        help="CMU BVH files for humanoids (default: ../shared/data/mocap/*.bvh if present; "
                             "pass --mocap with no files for random humanoid poses)")
    parser.add_argument("--test-clips", nargs="*", default=list(DEFAULT_TEST_CLIPS),
                        help="clip ids (file stems) held out for the test split")
    parser.add_argument("--size", type=int, default=256, help="rendered image size in pixels")
    parser.add_argument("--views", type=int, nargs="+", default=list(range(21)),
                        help="SV3D-p orbit frames to render (0..20, 20 = input view); default all 21")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of test samples per category")
    parser.add_argument("--poses-per-body", type=int, default=4, help="poses drawn per body identity")
    parser.add_argument("--supersample", type=int, default=1, help="anti-aliasing rays per pixel side (1-4)")
    parser.add_argument("--depths", action="store_true", help="also write depth maps (views/depths.npz)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run with the same arguments (finished samples are kept)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.mocap is None:
            files = sorted(DEFAULT_MOCAP.glob("*.bvh")) if DEFAULT_MOCAP.is_dir() else []
        else:
            files = list(args.mocap)
        clips = load_clips(files) if "humanoid" in args.categories else {}
        settings = DatasetSettings(
            n=args.n, seed=args.seed, categories=tuple(args.categories), image_size=args.size,
            frames=tuple(args.views), test_fraction=args.test_fraction, poses_per_body=args.poses_per_body,
            test_clips=tuple(args.test_clips), supersample=args.supersample, depths=args.depths,
            clip_frames={key: clip.num_frames for key, clip in clips.items()},
        )
        with tqdm(total=args.n, unit="sample", desc="synthetic") as bar:
            record = write_dataset(args.out, settings, clips, overwrite=args.overwrite, resume=args.resume,
                                   progress=lambda spec: bar.update(1))
    except KeyDiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = {split: len(part["samples"]) for split, part in record["splits"].items()}
    print(f"wrote {args.n} samples to {args.out} ({counts})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
