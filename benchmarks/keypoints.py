"""Keypoint discovery quality and training cost: evaluate a trained run, write benchmarks/results/keypoints.json.

    python benchmarks/keypoints.py --run RUN_DIR --data PACKED_DIR [--checkpoint CKPT] [--pictures docs/images]

RUN_DIR is a train.py output folder (summary.json, log.csv, config.json); PACKED_DIR holds one sub-folder
per category with train.npz/test.npz (training.synthetic.pack). The JSON is keyed
{category: {"trained"|"untrained"|"mean_pose": {"linear"|"mlp": {"mpjpe", "n_mpjpe", "p_mpjpe", ...}}}}
(MLP metrics are means over five regressor seeds, with "p_mpjpe_per_seed" and "p_mpjpe_seed_std"),
each category also carrying the "training" record of the run that made its checkpoint (time, steps, steps/s,
legs), "checkpoint", "command" and "date"; plus "goals" and "machine". Categories can come from different
runs (one checkpoint per category): `--update` keeps the categories of the existing JSON that this run does
not evaluate.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks.machine import machine_info, today
from training.evaluate import evaluate, markdown_table

RESULTS = Path(__file__).resolve().parent / "results" / "keypoints.json"


def training_record(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    with open(run / "log.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    first, last = rows[0], rows[-1]
    # a resumed run restarts its clock: a new leg begins wherever elapsed_s goes down
    legs, leg_start_step, previous = [], 0, rows[0]
    for row in rows[1:] + [None]:
        if row is None or float(row["elapsed_s"]) < float(previous["elapsed_s"]):
            legs.append({"last_step": int(previous["step"]), "steps": int(previous["step"]) - leg_start_step,
                         "wall_seconds": float(previous["elapsed_s"]), "steps_per_s": float(previous["steps_per_s"])})
            leg_start_step = int(previous["step"])
        previous = row if row is not None else previous
    return {
        "steps": int(last["step"]),
        "wall_seconds": sum(leg["wall_seconds"] for leg in legs),
        "legs": legs,
        "steps_per_s": float(last["steps_per_s"]),
        "first_logged_loss": float(first["loss"]),
        "last_logged_loss": float(last["loss"]),
        "stopped_by_time_limit": summary.get("stopped_by_time_limit"),
        "threads": summary.get("threads"),
        "world_size": summary.get("world_size"),
        "config": json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else None,
    }


def draw_pictures(checkpoint: Path, data: Path, out_dir: Path, count: int = 3) -> list[str]:
    from backend.keypoints import KeypointInputs, load_keypoint_model, predict_keypoints
    from backend.keypoints.backbones import build_cnn_backbone
    from training.data import images_to_tensor, load_views, split_path
    from training.draw import draw_keypoints_on_views

    model = load_keypoint_model(checkpoint)
    backbone = build_cnn_backbone(model.config)
    written = []
    for category_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        test = load_views(split_path(category_dir, "test")).select_views(list(model.view_indices))
        picks = np.linspace(0, len(test) - 1, count).round().astype(int)
        rows = []
        for index in picks:
            layers = backbone(images_to_tensor(test.images[index : index + 1]))
            keypoints, adjacency = predict_keypoints(model, KeypointInputs([l[0] for l in layers], torch.from_numpy(test.projections[index]), test.image_size))
            rows.append(draw_keypoints_on_views(test.images[index], test.projections[index], test.image_size, keypoints, adjacency))
        sheet = rows[0].copy() if len(rows) == 1 else None
        if sheet is None:
            from PIL import Image

            sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
            for i, row in enumerate(rows):
                sheet.paste(row, (0, i * rows[0].height))
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"keypoints_{category_dir.name}.png"
        sheet.save(path)
        written.append(str(path))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--checkpoint", type=Path, help="default RUN/model.pt")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--pictures", type=Path, help="folder for keypoints_<category>.png")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--update", action="store_true",
                        help="keep the categories of an existing --out file that this run does not evaluate")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    machine = machine_info()
    checkpoint = args.checkpoint or args.run / "model.pt"
    started = time.perf_counter()
    results = evaluate(checkpoint, args.data, args.cache_dir)
    command = "python benchmarks/keypoints.py " + " ".join(argv if argv is not None else sys.argv[1:])
    training = training_record(args.run)
    pictures = draw_pictures(checkpoint, args.data, args.pictures) if args.pictures else []
    seconds = round(time.perf_counter() - started, 1)
    record = {}
    if args.update and args.out.is_file():
        previous = json.loads(args.out.read_text())
        record = {name: block for name, block in previous.items() if isinstance(block, dict) and "trained" in block}
    for category, block in results.items():
        record[category] = {**block, "training": training, "checkpoint": checkpoint.as_posix(), "command": command,
                            "date": today(), "evaluation_seconds": seconds,
                            "pictures": [p for p in pictures if p.endswith(f"keypoints_{category}.png")]}
    human = record.get("humanoid", {})
    if human:
        trained, untrained = human["trained"]["mlp"]["p_mpjpe"], human["untrained"]["mlp"]["p_mpjpe"]
        record["goals"] = {
            "human_p_mpjpe_mlp_le_50mm": {"value": trained, "met": trained <= 50.0,
                                          "seed_std": human["trained"]["mlp"].get("p_mpjpe_seed_std")},
            "human_p_mpjpe_mlp_le_0.6x_untrained": {"value": trained / untrained, "met": trained <= 0.6 * untrained},
            "human_training_minutes": human["training"]["wall_seconds"] / 60.0,
        }
    record["machine"] = machine
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
