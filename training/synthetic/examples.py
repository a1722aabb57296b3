"""The committed example bodies (examples/humanoid, examples/quadruped): the default input of the main job.

Each is one body of the generator in its rest pose (the usual input of an auto-rigger), written as

    mesh.glb      the skinned mesh with its true skeleton and weights, in body units
                  (metres for the humanoid: a 1.5-1.9 m adult standing on z = 0, facing -Y)
    joints.json   the true joints in body units and in the canonical frame, names, parents, the transform

Regenerate (byte-identical) with:  .venv/bin/python -m training.synthetic.examples --out examples
No motion capture is needed, so anyone with a clone can rebuild them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from backend.atomic import atomic_output_folder
from backend.cameras import canonical_transform
from backend.errors import KeyDiffError
from backend.export.gltf_writer import write_rigged_gltf

from .body import skinned_mesh
from .sample import BUILDERS

EXAMPLE_FORMAT = "keydiff3d.synthetic_example"
# (folder name, category, seed): fixed bodies, chosen once and never changed (they are test fixtures).
EXAMPLES: tuple[tuple[str, str, int], ...] = (("humanoid", "humanoid", 6), ("quadruped", "quadruped", 3))


def example_record(category: str, seed: int, body, to_canonical) -> dict:
    return {
        "format": EXAMPLE_FORMAT, "version": 1, "category": category, "seed": seed, "body_id": body.body_id,
        "pose": "rest", "names": list(body.rig.names), "parents": body.rig.parents.tolist(),
        "joints_body": body.rig.joints.tolist(), "body_units": body.units,
        "joints_canonical": to_canonical.apply(body.rig.joints).tolist(),
        "body_to_canonical": to_canonical.to_list(), "body_facts": dict(sorted(body.extras.items())),
        "mesh": "mesh.glb", "command": "python -m training.synthetic.examples --out examples",
    }


def write_example(folder: str | Path, category: str, seed: int) -> Path:
    """Write one example body folder atomically."""
    folder = Path(folder)
    body = BUILDERS[category](np.random.default_rng([seed]), f"{category}-example-{seed}")
    mesh, weights, _ = skinned_mesh(body)
    to_canonical = canonical_transform(mesh.vertices)
    with atomic_output_folder(folder, marker="joints.json", what="example body folder") as tmp:
        write_rigged_gltf(tmp / "mesh.glb", mesh, body.rig, weights, name=body.body_id)
        record = example_record(category, seed, body, to_canonical)
        (tmp / "joints.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the committed example bodies.")
    parser.add_argument("--out", type=Path, default=Path("examples"), help="examples folder")
    args = parser.parse_args(argv)
    try:
        for name, category, seed in EXAMPLES:
            print(write_example(args.out / name, category, seed), file=sys.stderr)
    except KeyDiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
