"""Speed of the training edge maps (`training.edges.render_edge_maps`): forward + backward, one thread.

The edge maps are the only part of a training step written here rather than taken from torch's kernels, so
they are timed on their own against the brute-force form (`render_edge_maps_reference`: every pair's line
materialised, `amax`), at the training shape (cpu.yaml: 2 maps, K = 18, 64 px) and at heavier ones. Both forms
are checked to give the same maps before they are timed. Results: benchmarks/results/edge_maps.json.

    .venv/bin/python benchmarks/edge_maps.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from machine import machine_info, today, write_result

from training.edges import render_edge_maps, render_edge_maps_reference

SHAPES = ((2, 18, 64), (8, 18, 64), (4, 32, 128))  # (maps, keypoints, pixels): cpu.yaml's step first
SIGMA = 0.05


def _inputs(maps: int, keypoints: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    points = (torch.rand(maps, keypoints, 2, generator=generator) * 1.6 - 0.8).requires_grad_(True)
    logits = torch.randn(keypoints, keypoints, generator=generator)
    return points, F.softplus((logits + logits.T) / 2).detach().requires_grad_(True)


def _median_ms(render, points: torch.Tensor, weights: torch.Tensor, size: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        render(points, weights, size, SIGMA).square().sum().backward()
        times.append(time.perf_counter() - began)
    return 1000.0 * sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for maps, keypoints, size in SHAPES:
        points, weights = _inputs(maps, keypoints, generator)
        with torch.no_grad():
            difference = (render_edge_maps(points, weights, size, SIGMA) - render_edge_maps_reference(points, weights, size, SIGMA)).abs().max()
        row = {"maps": maps, "keypoints": keypoints, "pixels": size, "max_abs_difference": float(difference),
               "two_pass_ms": round(_median_ms(render_edge_maps, points, weights, size, args.repeats), 2),
               "reference_ms": round(_median_ms(render_edge_maps_reference, points, weights, size, args.repeats), 2)}
        rows.append(row)
        print(f"{maps} maps, K={keypoints}, {size} px: two-pass {row['two_pass_ms']} ms, brute force {row['reference_ms']} ms "
              f"(fwd+bwd, median of {args.repeats}; max |difference| {difference:.1e})")
    write_result(Path(__file__).parent / "results" / "edge_maps.json",
                 {"date": today(), "machine": machine_info(torch=torch.__version__, threads=1), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
