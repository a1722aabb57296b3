"""Learning-rate schedule: linear warm-up, a constant stretch, then cosine decay to a floor.

A pure function of the step, so a resumed run continues the schedule exactly where it stopped, and a resumed
run can start a fresh decay (`decay_start` = the step it resumes from) to anneal a model trained at a
constant rate. On the shipped CPU config a constant 1e-4 stalled at 59 mm while 3e-4 kept improving
(docs/training.md), which is why the rate's shape is worth a setting.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, total_steps: int, schedule: str = "constant", warmup_steps: int = 0,
              decay_start: int = 0, final_ratio: float = 0.03) -> float:
    """Multiplier of every parameter group's configured learning rate at optimiser step `step` (1-based)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; expected one of {SCHEDULES}")
    factor = 1.0
    if warmup_steps > 0 and step <= warmup_steps:
        factor = step / warmup_steps
    if schedule == "cosine":
        start = max(decay_start, warmup_steps)
        span = total_steps - start
        if span > 0 and step > start:
            progress = min(1.0, (step - start) / span)
            factor *= final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor
