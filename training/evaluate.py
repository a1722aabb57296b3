"""Evaluate discovered keypoints the way the paper does: regress joints from keypoints, score held-out data.

    python training/evaluate.py --checkpoint CKPT --data DIR --out results.json

For each category (a data folder with train.npz/test.npz, or one sub-folder per category): predict K
keypoints for every sample, fit the regressors (bias-free linear least squares; MLP 50-50 ReLU, averaged over 5 seeds) on
the train split only, and report MPJPE, N-MPJPE and P-MPJPE (+ mirror-min variants) on the test split, for
  - trained:   the checkpoint,
  - untrained: the same network at its initial weights (same seed as training),
  - mean_pose: no keypoints at all (regressors on a constant input, i.e. the mean train pose).
Errors are in mm when the data gives `joint_scale` (metres per canonical unit), else in canonical units x 1000.
Writes the JSON ({category: {model: {regressor: metrics}}}) and a markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from backend.errors import KeyDiffError
from backend.keypoints.backbones import build_cnn_backbone
from backend.keypoints.inference import load_checkpoint_dict
from backend.keypoints.network import KeypointNet, KeypointNetConfig
from backend.keypoints.volume import heatmap_spread
from training.config import REPO_ROOT
from training.data import ViewsSplit, cached_features, load_views, split_path
from training.metrics import flip_permutation_from_names, pose_errors
from training.regressors import LinearRegressor, MlpRegressor

METRIC_ORDER = ("mpjpe", "n_mpjpe", "p_mpjpe", "mpjpe_mirror_min", "n_mpjpe_mirror_min", "p_mpjpe_mirror_min")


def category_folders(data_dir: Path) -> dict[str, Path]:
    """{category: folder}; a folder with train/test files is one category named by its `categories` array."""
    if (data_dir / "train.npz").is_file() or (data_dir / "train" / "views.npz").is_file():
        return {"": data_dir}
    found = {p.name: p for p in sorted(data_dir.iterdir()) if p.is_dir() and ((p / "train.npz").is_file() or (p / "train" / "views.npz").is_file())}
    if not found:
        raise KeyDiffError("unreadable_file", f"{data_dir} holds no train.npz, nor sub-folders with one")
    return found


@dataclass
class SplitPrediction:
    keypoints: np.ndarray  # [N, K, 3]
    spread: np.ndarray  # [N, K] spatial variance of each keypoint's 3D heatmap (backend.keypoints.volume.heatmap_spread)


@torch.no_grad()
def predict_split(net: KeypointNet, split: ViewsSplit, layers: list[torch.Tensor], batch: int = 8) -> SplitPrediction:
    """Keypoints and heatmap spreads for every sample of a split."""
    net.eval()
    projections = torch.from_numpy(split.projections).float()
    keypoints, spreads = [], []
    for first in range(0, len(split), batch):
        chunk = [layer[first : first + batch].float() for layer in layers]
        output = net(chunk, projections[first : first + batch], split.image_size)
        keypoints.append(output.keypoints.double().numpy())
        spreads.append(heatmap_spread(output.heatmaps.flatten(2), net.centres).double().numpy())
    return SplitPrediction(np.concatenate(keypoints), np.concatenate(spreads))


def keypoint_activity(prediction: SplitPrediction, cube_half_size: float) -> dict:
    """Which keypoints do any work: a dead one has a heatmap almost as wide as the cube (its soft-argmax then
    sits at the centre whatever the pose). Reported per keypoint, in canonical units."""
    heatmap_std = np.sqrt(prediction.spread.mean(0))  # [K]
    motion_std = np.linalg.norm(prediction.keypoints.std(0), axis=-1)  # [K] how far each keypoint moves across samples
    flat_std = np.sqrt(3 * (2 * cube_half_size) ** 2 / 12)
    dead = heatmap_std > 0.5 * flat_std
    return {"dead_keypoints": int(dead.sum()), "dead_threshold_heatmap_std": 0.5 * flat_std,
            "heatmap_std": heatmap_std.round(4).tolist(), "motion_std": motion_std.round(4).tolist()}


MLP_SEEDS = 5  # the MLP's initial weights alone move P-MPJPE by +-3 mm (docs/training.md); report the mean


def score(train_inputs: np.ndarray, train_joints: np.ndarray, test_inputs: np.ndarray, test_joints: np.ndarray,
          test_scale_mm: np.ndarray, flip: np.ndarray | None, mlp_seeds: int = MLP_SEEDS) -> dict[str, dict[str, float]]:
    """Fit every regressor on train, score on test in mm. {regressor: metrics}

    The MLP is fitted once per seed 0..mlp_seeds-1 and its metrics are the means over seeds, with the per-seed
    P-MPJPE and its standard deviation beside them: a single seed can pass or miss a goal by luck.
    """
    scale = test_scale_mm[:, None, None]

    def errors(regressor) -> dict[str, float]:
        return pose_errors(regressor.fit(train_inputs, train_joints).predict(test_inputs) * scale, test_joints * scale, flip)

    results = {"linear": errors(LinearRegressor())}
    per_seed = [errors(MlpRegressor(seed=seed)) for seed in range(mlp_seeds)]
    mlp = {name: float(np.mean([run[name] for run in per_seed])) for name in per_seed[0]}
    mlp.update(seeds=mlp_seeds, p_mpjpe_seed_std=float(np.std([run["p_mpjpe"] for run in per_seed])),
               p_mpjpe_per_seed=[round(run["p_mpjpe"], 2) for run in per_seed])
    results["mlp"] = mlp
    return results


def _load(folder: Path, split: str, frames: list[int]) -> tuple[ViewsSplit, Path]:
    source = split_path(folder, split)
    data = load_views(source).select_views(frames)
    if data.joints is None:
        raise KeyDiffError("invalid_argument", f"{source} has no ground-truth joints; evaluation needs them")
    return data, source


def evaluate(checkpoint: str | Path, data_dir: str | Path, cache_dir: str | Path | None = None,
             include_untrained: bool = True, include_mean_pose: bool = True, mlp_seeds: int = MLP_SEEDS) -> dict:
    payload = load_checkpoint_dict(checkpoint)
    config = KeypointNetConfig.from_dict(payload["model_config"])
    frames = list(payload.get("view_indices", (20, 4, 9, 14)))
    train_config = json.loads(payload.get("train_config", "{}") or "{}")
    seed = int(train_config.get("train", {}).get("seed", 0))
    trained = KeypointNet(config)
    trained.load_state_dict(payload["model"])
    models = {"trained": trained}
    if include_untrained:
        torch.manual_seed(seed)  # train.py seeds exactly like this before building the network
        models["untrained"] = KeypointNet(config)
    backbone = build_cnn_backbone(config)
    backbone_id = f"mobilenet_v2-b0353104|{config.backbone_layers}|{config.backbone_image_size}"
    cache = Path(cache_dir) if cache_dir else REPO_ROOT / "runs" / "feature_cache"
    results: dict = {}
    for folder_name, folder in category_folders(Path(data_dir)).items():
        (train, train_src), (test, test_src) = _load(folder, "train", frames), _load(folder, "test", frames)
        category = folder_name or (str(train.categories[0]) if train.categories is not None else "default")
        flip = flip_permutation_from_names([str(n) for n in train.joint_names]) if train.joint_names is not None else None
        scale_mm = 1000.0 * (test.joint_scale.astype(np.float64) if test.joint_scale is not None else np.ones(len(test)))
        train_layers = cached_features(train, train_src, cache, backbone, backbone_id)
        test_layers = cached_features(test, test_src, cache, backbone, backbone_id)
        entry, activity = {}, {}
        for name, net in models.items():
            train_prediction, test_prediction = predict_split(net, train, train_layers), predict_split(net, test, test_layers)
            entry[name] = score(train_prediction.keypoints, train.joints, test_prediction.keypoints, test.joints, scale_mm, flip,
                                mlp_seeds)
            activity[name] = keypoint_activity(test_prediction, config.cube_half_size)
        if include_mean_pose:
            # a constant input leaves the MLP nothing to vary across seeds: one fit says it all
            entry["mean_pose"] = score(np.ones((len(train), 1, 3)), train.joints, np.ones((len(test), 1, 3)), test.joints, scale_mm,
                                       flip, mlp_seeds=1)
        entry["counts"] = {"train": len(train), "test": len(test), "joints": int(train.joints.shape[1]),
                           "keypoints": config.num_keypoints, "units": "mm" if test.joint_scale is not None else "canonical units x 1000"}
        entry["keypoint_activity"] = activity
        results[category] = entry
    return results


def markdown_table(results: dict) -> str:
    """MLP rows are means over seeds; their P-MPJPE carries the standard deviation across seeds."""
    lines = ["| category | model | regressor | MPJPE | N-MPJPE | P-MPJPE | P-MPJPE mirror-min |", "|---|---|---|---|---|---|---|"]
    for category, entry in results.items():
        for model in ("trained", "untrained", "mean_pose"):
            for regressor, metrics in entry.get(model, {}).items():
                cells = [f"{metrics[m]:.1f}" if m in metrics else "n/a" for m in ("mpjpe", "n_mpjpe", "p_mpjpe", "p_mpjpe_mirror_min")]
                if "p_mpjpe_seed_std" in metrics:
                    cells[2] += f" ± {metrics['p_mpjpe_seed_std']:.1f}"
                lines.append(f"| {category} | {model} | {regressor} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a keypoint checkpoint with the regression protocol.")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="folder with train.npz/test.npz, or one sub-folder per category")
    parser.add_argument("--out", required=True, help="results JSON; a .md table is written beside it")
    parser.add_argument("--cache-dir", help="frozen-feature cache (default runs/feature_cache)")
    parser.add_argument("--no-untrained", action="store_true")
    parser.add_argument("--no-mean-pose", action="store_true")
    parser.add_argument("--mlp-seeds", type=int, default=MLP_SEEDS, help=f"MLP fits averaged per score (default {MLP_SEEDS})")
    args = parser.parse_args(argv)
    try:
        if args.mlp_seeds < 1:
            raise KeyDiffError("invalid_argument", f"--mlp-seeds must be >= 1, got {args.mlp_seeds}")
        torch.set_num_threads(int(os.environ.get("KEYDIFF_THREADS", "2")))
        results = evaluate(args.checkpoint, args.data, args.cache_dir, not args.no_untrained, not args.no_mean_pose,
                           args.mlp_seeds)
    except KeyDiffError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    _write_atomic(out, json.dumps(results, indent=2))
    table = markdown_table(results)
    _write_atomic(out.with_suffix(".md"), table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
