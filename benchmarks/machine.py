"""What every benchmark result records about where it ran, so figures from different days can be compared."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import numpy as np


def machine_info(**extra) -> dict:
    """CPU, cores, load at start, versions; `extra` adds what one benchmark also depends on."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        **extra,
    }


def today() -> str:
    return datetime.date.today().isoformat()


def write_result(path: Path, result: dict) -> None:
    """Write a benchmark's JSON whole (temp file + rename): a killed run never leaves a truncated result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
