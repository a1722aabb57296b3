"""Make docs/images/addon_posed_<name>.png: rig a CC0 character with the real backend (markers = its own joint
positions, our MST skeleton and Gaussian-distance weights), import the bundle with the add-on, pose, render.

    .venv/bin/python tests/blender/render_docs.py [NAME ...]     (NAME: a file stem in ../shared/data/rigs)
Runs with the backend's Python; the Blender part runs in a child process (render_posed.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from backend.export.gltf_reader import load_skinned_gltf
from backend.pipeline.markers import save_markers
from backend.pipeline.rig_mesh import RigMeshOptions, rig_mesh

REPO = Path(__file__).resolve().parents[2]
RIGS = REPO.parent / "shared" / "data" / "rigs"


def main(names: list[str]) -> None:
    for name in names or ["animals_pack_Husky"]:
        source = RIGS / f"{name}.glb"
        with tempfile.TemporaryDirectory() as scratch:
            asset = load_skinned_gltf(source)
            edges = [[int(p), i] for i, p in enumerate(asset.skeleton_parents) if p >= 0]
            markers = Path(scratch) / "markers.json"
            save_markers(markers, asset.skeleton_joints, edges=edges)
            bundle = rig_mesh(source, Path(scratch) / "bundle", RigMeshOptions(markers=str(markers)))
            out = REPO / "docs" / "images" / f"addon_posed_{name}.png"
            subprocess.run([sys.executable, str(Path(__file__).with_name("render_posed.py")), str(bundle), str(out)],
                           check=True, env={**os.environ, "HOME": scratch}, cwd=scratch)
            print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
