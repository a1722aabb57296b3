"""Seed trials: start several seeds for a few steps each, continue only the one with the lowest training loss.

Why: on CPU budgets the seed decides much of a run's fate, and decides it early. Two 60-minute runs of `cpu.yaml`
that differ only in `seed` score 51.9 and 62.8 mm MLP P-MPJPE, and the worse one's loss was already higher from
step 250 on (its mask term 0.054 against 0.034 at steps 500-750; docs/training.md, "Seed trials"). The loss is the
training objective itself, so choosing by it uses no labels.

Layout of a run with `train.seed_trials: n`:

    <out_dir>/seed_trials/seed_<s>/   each trial: an ordinary run of seed s stopped at `trial_steps`
    <out_dir>/seed_trials.json        every trial's score and the chosen seed
    <out_dir>/last.pt, model.pt, ...  the chosen trial, continued (its checkpoint and log are copied first)

Because a run resumes exactly, the result is the same run as training the chosen seed alone from the start. The
trials' wall time counts toward `max_minutes`, so a 60-minute budget stays 60 minutes. `--resume` picks up
wherever a killed run stopped: inside a trial, between trials, or in the continuation.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from backend.errors import KeyDiffError
from training.config import TrainConfig
from training.train import train

RECORD_FILE = "seed_trials.json"
TRIALS_DIR = "seed_trials"


@dataclass
class SeedTrial:
    seed: int
    score: float  # mean training loss over the trial's second half (the warm-up and first drop left out)
    steps: int


def trial_score(log_path: Path, trial_steps: int) -> float:
    """Mean logged loss over steps (trial_steps / 2, trial_steps] of a trial's log.csv."""
    if not log_path.is_file():
        raise KeyDiffError("unreadable_file", f"seed trial log {log_path} is missing; delete {log_path.parent} and resume")
    with open(log_path, newline="") as stream:
        losses = [float(row["loss"]) for row in csv.DictReader(stream)
                  if trial_steps // 2 < int(row["step"]) <= trial_steps]
    if not losses:
        raise KeyDiffError("unreadable_file", f"seed trial log {log_path} has no rows after step {trial_steps // 2}")
    return sum(losses) / len(losses)


def choose(trials: list[SeedTrial]) -> SeedTrial:
    """The lowest score; a tie goes to the first seed, so the choice never depends on float noise in ordering."""
    return min(trials, key=lambda trial: trial.score)


def _write_whole(path: Path, fill: Callable[[Path], object]) -> None:
    """Fill a hidden sibling, then rename it over `path`: a kill leaves the old file or the new one, never half."""
    temporary = path.with_name(f".{path.name}.partial")
    fill(temporary)
    temporary.replace(path)


def _trial_config(config: TrainConfig, seed: int, out_dir: Path) -> TrainConfig:
    """An ordinary run of one seed; trials run to their step count, the time limit applies to the whole run."""
    return replace(config, train=replace(config.train, seed=seed, seed_trials=1, max_minutes=0.0, out_dir=str(out_dir)))


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _run_trials(config: TrainConfig, out_dir: Path, resume: bool, progress: bool) -> int:
    """Train every trial up to `trial_steps` (resuming those a killed run left unfinished), record the scores and
    return the chosen seed. Rank 0 reads the logs and decides; the other ranks receive the seed."""
    settings = config.train
    seeds = [settings.seed + offset for offset in range(settings.seed_trials)]
    for number, seed in enumerate(seeds, 1):
        if progress and _rank() == 0:
            print(f"seed trial {number}/{len(seeds)}: seed {seed}, {settings.trial_steps} steps", file=sys.stderr)
        train(_trial_config(config, seed, out_dir / TRIALS_DIR / f"seed_{seed}"), resume=resume,
              stop_after=settings.trial_steps, progress=progress)
    chosen = torch.tensor(0, dtype=torch.int64)
    if _rank() == 0:
        trials = [SeedTrial(seed, trial_score(out_dir / TRIALS_DIR / f"seed_{seed}" / "log.csv", settings.trial_steps),
                            settings.trial_steps) for seed in seeds]
        best = choose(trials)
        winner = out_dir / TRIALS_DIR / f"seed_{best.seed}"
        for name in ("last.pt", "log.csv"):  # the record comes last: without it a resume redoes the choice
            _write_whole(out_dir / name, lambda temporary: shutil.copyfile(winner / name, temporary))
        record = {"chosen_seed": best.seed, "trial_steps": settings.trial_steps, "score": "mean training loss over "
                  "the trial's second half", "trials": [trial.__dict__ for trial in trials]}
        _write_whole(out_dir / RECORD_FILE, lambda temporary: temporary.write_text(json.dumps(record, indent=2)))
        if progress:
            print("seed trials: " + ", ".join(f"seed {t.seed} loss {t.score:.4f}" for t in trials)
                  + f" -> continuing seed {best.seed}", file=sys.stderr)
        chosen.fill_(best.seed)
    if dist.is_initialized():
        dist.broadcast(chosen, src=0)
    return int(chosen)


def train_with_seed_trials(config: TrainConfig, resume: bool = False, progress: bool = True) -> list[dict]:
    """`train`, with seed trials first when `train.seed_trials` > 1; returns the rows of the continued run."""
    settings = config.train
    if settings.seed_trials <= 1:
        return train(config, resume=resume, progress=progress)
    began = time.perf_counter()
    out_dir = config.resolve(settings.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = out_dir / RECORD_FILE
    if resume and record.is_file():
        chosen = int(json.loads(record.read_text())["chosen_seed"])
        minutes = settings.max_minutes
    else:
        chosen = _run_trials(config, out_dir, resume, progress)
        # the trials spent part of this run's budget; keep a sliver so the continuation still saves model.pt
        spent = (time.perf_counter() - began) / 60.0
        minutes = max(settings.max_minutes - spent, 1e-9) if settings.max_minutes > 0 else 0.0
    continued = replace(config, train=replace(settings, seed=chosen, seed_trials=1, max_minutes=minutes))
    return train(continued, resume=True, progress=progress)
