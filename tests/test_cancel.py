"""Cancel = terminate the process (DESIGN.md protocol): the job must stop cleanly and leave nothing behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import trimesh

from backend.pipeline.markers import save_markers

from conftest import REPO


def test_sigterm_during_export_leaves_no_bundle_and_no_temporary_folder(tmp_path: Path) -> None:
    ball = trimesh.creation.icosphere(subdivisions=6, radius=1.0)      # 41k vertices: export takes a moment
    ball.export(tmp_path / "ball.ply")
    save_markers(tmp_path / "m.json", [[0, 0, -1], [0, 0, 0], [0, 0, 1]])
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "rig-mesh", str(tmp_path / "ball.ply"), "--markers",
         str(tmp_path / "m.json"), "-o", str(out), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    assert process.stdout is not None
    for line in process.stdout:
        message = json.loads(line)
        if message["type"] == "progress" and message["stage"] == "export":
            process.send_signal(signal.SIGTERM)
            break
    rest, errors = process.communicate(timeout=120)
    last = json.loads(rest.splitlines()[-1]) if rest.strip() else None
    if last is not None and last["type"] == "result":
        return  # the job finished before the signal landed: nothing to clean, the bundle is complete
    assert process.returncode == 130, errors
    assert last == {"type": "error", "code": "cancelled", "message": "stopped by a termination signal"}
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ball.ply", "m.json"]
