"""Training configuration: one YAML file = `model` (KeypointNetConfig) + `data` + `train` sections.

Unknown keys are errors (a typo must not silently fall back to a default); relative paths in `data` and
`train` are resolved against the repository root so a config works from any working directory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from backend.errors import KeyDiffError
from backend.keypoints.network import KeypointNetConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16")
ROTATION_AXES = ("yaw", "3d")  # train.rotation_axes (training/augment.random_rotations)


@dataclass
class DataConfig:
    path: str = "data/synthetic"  # cnn: folder with train.npz / test.npz (training/data.py); sv3d: a training/prepare.py cache
    frames: list[int] = field(default_factory=lambda: [20, 4, 9, 14])  # input view first
    max_samples: int = 0  # 0 = all


@dataclass
class TrainSettings:
    steps: int = 4000
    max_minutes: float = 0.0  # > 0: stop (and save model.pt) once this much wall time has passed
    batch_size: int = 2
    lr: float = 1e-4  # keypoint network (AdamW); the peak rate when a schedule is set
    lr_schedule: str = "constant"  # "constant" | "cosine" (training/schedule.py), applied to every group
    warmup_steps: int = 0  # linear warm-up from 0 over this many steps
    decay_start: int = 0  # cosine: constant until this step, then decay to lr * lr_final_ratio at `steps`
    lr_final_ratio: float = 0.03
    recon_lr: float = 1e-3  # reconstruction network
    adjacency_lr_mult: float = 512.0  # edge logits learn this much faster (AutoLink/BKinD x512)
    weight_decay: float = 1e-3
    ema_decay: float = 0.0  # > 0: model.pt holds an exponential moving average of the keypoint network's weights
    edge_sigma: float = 0.05  # Gaussian line width in [-1, 1] image units (not given by the paper)
    render_size: int = 64  # S of edge maps and reconstructions
    targets_per_sample: int = 1  # T target views reconstructed per sample
    use_heatmaps: bool = True  # also feed the K projected keypoint heatmaps to the reconstruction net
    heatmap_sigma: float = 0.08
    recon_widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    perceptual_weight: float = 1.0
    mask_weight: float = 0.5
    concentration_weight: float = 0.0  # x mean spatial variance of the 3D heatmaps (training/losses.py; not in the paper)
    separation_weight: float = 0.0  # x mean exp(-d^2 / 2 sigma^2) over keypoint pairs (BKinD-3D; not in KeyDiff3D)
    separation_sigma: float = 0.05  # canonical units (a standing human is about 1.1)
    silhouette_weight: float = 0.0  # x mean distance of projected keypoints outside the foreground masks (not in the paper)
    rotation_weight: float = 0.0  # x L_vic: keypoints from a randomly turned voxel grid must match (paper appendix D.1)
    rotation_axes: str = "yaw"  # "yaw" (about the orbit's vertical axis) or "3d" (any rotation, as the paper says)
    mirror_weight: float = 0.0  # x mirror consistency: paired keypoints swap in the mirror image (not in the paper)
    mirror_pairs: int | list[list[int]] = 9  # n: keypoints (0, 1), (2, 3), ... are left/right partners, the rest
    # lie on the symmetry plane; 9 pairs all of the default 18 (with 6, the feet took self-partnered slots and stayed
    # front/back). Or explicit [[a, b], ...] pairs, e.g. to fine-tune a checkpoint trained without the term.
    flip: bool = False  # each sample is its mirror image with even odds (always so with mirror_weight > 0)
    perceptual_size: int = 128
    affine_rotation_deg: float = 15.0
    affine_scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    affine_translation: float = 0.1
    seed: int = 0
    precision: str = "fp32"  # "bf16": convolutions under bfloat16 autocast (geometry stays float32); +21 % steps/s measured
    num_threads: int = 2
    log_every: int = 10
    checkpoint_every: int = 200
    out_dir: str = "runs/keypoints"
    cache_dir: str = "runs/feature_cache"
    tensorboard: bool = True  # used when the tensorboard package is installed

    @property
    def uses_mirror_images(self) -> bool:
        """Whether training loads the mirror images: as partners (mirror consistency) or as flipped samples."""
        return bool(self.mirror_weight) or self.flip

    def __post_init__(self) -> None:
        from training.schedule import SCHEDULES

        if self.lr_schedule not in SCHEDULES:
            raise KeyDiffError("invalid_argument", f"train.lr_schedule must be one of {list(SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0.0 <= self.lr_final_ratio <= 1.0 or self.warmup_steps < 0 or self.decay_start < 0:
            raise KeyDiffError("invalid_argument", "train.lr_final_ratio must be in [0, 1] and warmup_steps, decay_start >= 0")
        if self.precision not in PRECISIONS:
            raise KeyDiffError("invalid_argument", f"train.precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if not self.lr > 0 or self.max_minutes < 0:
            raise KeyDiffError("invalid_argument", f"train.lr must be > 0 and train.max_minutes >= 0, got {self.lr} and {self.max_minutes}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise KeyDiffError("invalid_argument", f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if (min(self.concentration_weight, self.separation_weight, self.silhouette_weight, self.rotation_weight,
                self.mirror_weight) < 0 or self.separation_sigma <= 0):
            raise KeyDiffError("invalid_argument", "train.concentration_weight, separation_weight, silhouette_weight, "
                               "rotation_weight and mirror_weight must be >= 0, separation_sigma > 0")
        if self.rotation_axes not in ROTATION_AXES:
            raise KeyDiffError("invalid_argument", f"train.rotation_axes must be one of {list(ROTATION_AXES)}, got {self.rotation_axes!r}")


@dataclass
class TrainConfig:
    model: KeypointNetConfig = field(default_factory=KeypointNetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        if self.train.mirror_weight:
            _check_mirror_pairs(self.train.mirror_pairs, self.model.num_keypoints)
        if self.train.uses_mirror_images and self.model.backbone != "cnn":
            raise KeyDiffError("invalid_argument", "train.mirror_weight and train.flip need the cnn backbone: the "
                               "mirrored views' features are computed by it (SV3D features of mirrored views are not cached)")

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "data": asdict(self.data), "train": asdict(self.train)}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        unknown = sorted(set(values) - {"model", "data", "train"})
        if unknown:
            raise KeyDiffError("invalid_argument", f"unknown config sections {unknown}; expected model, data, train")
        return cls(model=KeypointNetConfig.from_dict(values.get("model") or {}),
                   data=_build(DataConfig, values.get("data") or {}, "data"),
                   train=_build(TrainSettings, values.get("train") or {}, "train"))

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else REPO_ROOT / candidate


def _check_mirror_pairs(pairs: int | list[list[int]], count: int) -> None:
    """Pairs must name distinct keypoints of the model, each in at most one pair."""
    if isinstance(pairs, bool) or not isinstance(pairs, (int, list)):
        raise KeyDiffError("invalid_argument", f"train.mirror_pairs must be a number or a list of [a, b] pairs, got {pairs!r}")
    if isinstance(pairs, int):
        if not 0 <= 2 * pairs <= count:
            raise KeyDiffError("invalid_argument", f"train.mirror_pairs={pairs} pairs need {2 * pairs} keypoints; "
                               f"the model has {count}")
        return
    flat = [k for pair in pairs for k in (pair if isinstance(pair, list) and len(pair) == 2 else [None, None])]
    if not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < count for k in flat) or len(set(flat)) != len(flat):
        raise KeyDiffError("invalid_argument", f"train.mirror_pairs must be [a, b] pairs of distinct keypoints in "
                           f"0..{count - 1}, each in one pair at most; got {pairs!r}")


def _build(cls, values: dict, section: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise KeyDiffError("invalid_argument", f"unknown keys {unknown} in config section '{section}'; expected some of {sorted(known)}")
    return cls(**values)


def load_config(path: str | Path) -> TrainConfig:
    try:
        import yaml
    except ImportError as error:
        raise KeyDiffError("missing_dependency", "training configs are YAML: `pip install pyyaml`") from error
    path = Path(path)
    if not path.is_file():
        raise KeyDiffError("unreadable_file", f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise KeyDiffError("unreadable_file", f"config file {path} is not valid YAML: {error}") from error
    if not isinstance(values, dict):
        raise KeyDiffError("unreadable_file", f"config file {path} must hold a mapping with model/data/train sections")
    return TrainConfig.from_dict(values)
