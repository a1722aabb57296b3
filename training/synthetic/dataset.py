"""A whole synthetic dataset: which samples, which split, which body and clip; then writing them all.

Layout on disk:

    DIR/index.json                      settings, splits (clips, body ids, sample ids), one row per sample,
                                        and the CMU acknowledgement when motion capture was used; present
                                        only once the dataset is complete (plan.json while it is written)
    DIR/<split>/<sample_id>/            one sample, see `training.synthetic.sample`

Splits keep test data unseen: motion clips are assigned whole to train or test (default test clip: CMU
02_01, the only clip of subject 2), and body identities are drawn per split from different seeds, so no
test body (proportions, colours) and no test motion ever appears in training. Within each category every
5th sample (test_fraction 0.2) is a test sample; each body is shown in `poses_per_body` poses.

Everything is a pure function of the settings: the same seed gives byte-identical files (no timestamps,
sorted keys, deterministic PNG and npz encoders).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from backend.errors import KeyDiffError
from backend.views.render import RenderSettings

from .bvh import BvhClip, read_bvh
from .sample import CATEGORIES, SampleSpec, build_sample, write_sample

DATASET_FORMAT = "keydiff3d.synthetic"
DATASET_VERSION = 1
DEFAULT_TEST_CLIPS: tuple[str, ...] = ("cmu_02_01",)
SPLITS: tuple[str, ...] = ("train", "test")
CMU_ACKNOWLEDGEMENT = ("The data used in this project was obtained from mocap.cs.cmu.edu. "
                       "The database was created with funding from NSF EIA-0196217.")


@dataclass(frozen=True)
class DatasetSettings:
    n: int = 100
    seed: int = 0
    categories: tuple[str, ...] = CATEGORIES
    image_size: int = 256
    frames: tuple[int, ...] = tuple(range(21))
    test_fraction: float = 0.2
    poses_per_body: int = 4
    test_clips: tuple[str, ...] = DEFAULT_TEST_CLIPS
    supersample: int = 1
    depths: bool = False
    clip_frames: dict = field(default_factory=dict)     # clip id -> frame count (filled from the BVH files)

    def validate(self) -> "DatasetSettings":
        if self.n < 1:
            raise KeyDiffError("invalid_argument", f"--n must be at least 1, got {self.n}")
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown or not self.categories or len(set(self.categories)) != len(self.categories):
            raise KeyDiffError("invalid_argument", f"categories must be distinct names from {list(CATEGORIES)}, "
                                                   f"got {list(self.categories)}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise KeyDiffError("invalid_argument", f"test_fraction must lie in [0, 1), got {self.test_fraction}")
        if self.poses_per_body < 1:
            raise KeyDiffError("invalid_argument", f"poses_per_body must be >= 1, got {self.poses_per_body}")
        bad = [f for f in self.frames if not 0 <= f <= 20]
        if not self.frames or bad or len(set(self.frames)) != len(self.frames):
            raise KeyDiffError("invalid_argument", f"views must be distinct orbit frames in 0..20, got {list(self.frames)}")
        return self


def clip_id(path: str | Path) -> str:
    """A clip's id is its file name without the extension (e.g. 'cmu_02_01')."""
    return Path(path).stem


def load_clips(paths: Iterable[str | Path]) -> dict[str, BvhClip]:
    """Read BVH files keyed by clip id; two files with the same id are refused (splits go by id)."""
    clips: dict[str, BvhClip] = {}
    for path in sorted(Path(p) for p in paths):
        key = clip_id(path)
        if key in clips:
            raise KeyDiffError("invalid_argument", f"two motion files share the clip id {key!r}; rename one")
        clips[key] = read_bvh(path)
    return clips


def clip_split(settings: DatasetSettings) -> dict[str, list[str]]:
    """{"train": [...], "test": [...]} clip ids; a whole clip is in exactly one split."""
    ids = sorted(settings.clip_frames)
    return {"train": [c for c in ids if c not in settings.test_clips],
            "test": [c for c in ids if c in settings.test_clips]}


def _split_of(index_in_category: int, test_fraction: float) -> str:
    """Spread test samples evenly: sample j is a test sample when floor((j+1)f) > floor(jf)."""
    j = index_in_category
    return "test" if math.floor((j + 1) * test_fraction) > math.floor(j * test_fraction) else "train"


def plan(settings: DatasetSettings) -> list[SampleSpec]:
    """The ordered sample specs of a dataset (round-robin over categories)."""
    settings = settings.validate()
    clips = clip_split(settings)
    counters: dict[tuple[str, str], int] = {}
    specs: list[SampleSpec] = []
    for k in range(settings.n):
        category = settings.categories[k % len(settings.categories)]
        j = k // len(settings.categories)
        split = _split_of(j, settings.test_fraction)
        m = counters.get((category, split), 0)
        counters[(category, split)] = m + 1
        cat_code, split_code = CATEGORIES.index(category), SPLITS.index(split)
        body_number = m // settings.poses_per_body
        pose_seed = (settings.seed, cat_code, split_code, m, 1)
        clip, frame = None, None
        if category == "humanoid" and settings.clip_frames:
            if not clips[split]:
                raise KeyDiffError(
                    "invalid_argument",
                    f"humanoid {split} samples need a {split} motion clip; clips given: {sorted(settings.clip_frames)}, "
                    f"test clips: {list(settings.test_clips)}",
                )
            rng = np.random.default_rng(list(pose_seed) + [2])
            clip = clips[split][int(rng.integers(len(clips[split])))]
            frame = int(rng.integers(1, settings.clip_frames[clip]))          # frame 0 is often a T-pose
        specs.append(SampleSpec(
            sample_id=f"{category}_{j:05d}", split=split, category=category,
            body_id=f"{category}-{split}-{body_number:04d}",
            body_seed=(settings.seed, cat_code, split_code, body_number, 0), pose_seed=pose_seed,
            clip_id=clip, frame=frame,
        ))
    return specs


def index_record(settings: DatasetSettings, specs: Sequence[SampleSpec]) -> dict:
    clips = clip_split(settings)
    splits = {}
    for split in SPLITS:
        chosen = [s for s in specs if s.split == split]
        splits[split] = {"clips": clips[split], "body_ids": sorted({s.body_id for s in chosen}),
                         "samples": [s.sample_id for s in chosen]}
    record = {
        "format": DATASET_FORMAT, "version": DATASET_VERSION,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()},
        "splits": splits,
        "samples": [{"id": s.sample_id, "split": s.split, "category": s.category, "body_id": s.body_id,
                     "clip_id": s.clip_id, "frame": s.frame, "path": f"{s.split}/{s.sample_id}"} for s in specs],
    }
    if settings.clip_frames:
        record["mocap_acknowledgement"] = CMU_ACKNOWLEDGEMENT
    return record


def write_dataset(out: str | Path, settings: DatasetSettings, clips: dict[str, BvhClip] | None = None,
                  overwrite: bool = False, resume: bool = False, progress=None) -> dict:
    """Write every planned sample, then index.json; returns the index record.

    The plan goes to `plan.json` first and becomes `index.json` once every sample is written, so an
    index means a complete dataset. `resume` continues an interrupted run with the same settings (samples
    are deterministic and written atomically, so finished ones are kept). A non-empty folder is otherwise
    refused unless `overwrite` (its sample folders are then replaced one by one). `progress(spec)` is
    called after each sample (the CLI passes a tqdm update).
    """
    out = Path(out)
    specs = plan(settings)
    record = index_record(settings, specs)
    if out.exists() and any(out.iterdir()) and not overwrite:
        previous = _previous_plan(out)
        if not resume:
            hint = "--resume to continue it or " if previous is not None else ""
            raise KeyDiffError("invalid_argument", f"output folder {out} is not empty; pass {hint}--overwrite")
        if previous != json.loads(json.dumps(record)):
            raise KeyDiffError("invalid_argument", f"cannot resume {out}: it was started with other settings "
                                                   f"(or is not a synthetic dataset); pass --overwrite")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyDiffError("output_not_writable", f"cannot create {out}: {exc.strerror}") from exc
    _write_json_atomic(out / "plan.json", record)
    render_settings = RenderSettings(supersample=settings.supersample)
    for spec in specs:
        folder = out / spec.split / spec.sample_id
        if not (resume and (folder / "joints.json").is_file()):
            write_sample(build_sample(spec, clips), folder, settings.image_size, settings.frames,
                         render_settings, depths=settings.depths)
        if progress is not None:
            progress(spec)
    os.replace(out / "plan.json", out / "index.json")
    return record


def _previous_plan(out: Path) -> dict | None:
    """The plan of an earlier run in `out` (finished: index.json, interrupted: plan.json), if readable."""
    for name in ("plan.json", "index.json"):
        try:
            return json.loads((out / name).read_text())
        except (OSError, json.JSONDecodeError):
            continue
    return None


def _write_json_atomic(path: Path, record: dict) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(record, indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, 0o644)                                 # mkstemp makes it private; datasets are shared
        os.replace(tmp, path)
    except OSError as exc:
        raise KeyDiffError("output_not_writable", f"cannot write {path}: {exc}") from exc

