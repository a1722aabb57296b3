"""The bad-input corpus (tests/data/make_bad_inputs.py) through the real command line: one line, a stable code,
a non-zero exit, no traceback, no output and no stray temporary files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backend.pipeline.markers import save_markers

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "data"))
from make_bad_inputs import MESH_CASES, make_corpus  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("bad_inputs"))


def assert_clean_failure(done: subprocess.CompletedProcess, code: str, workdir: Path, out: Path) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith(f"keydiff3d: error [{code}]"), done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "type": "error", "code": code, "message": lines[0].split("]: ", 1)[1]}
    assert not out.exists()
    assert not [p for p in workdir.iterdir() if p.name.startswith(".")], "a temporary folder was left behind"


@pytest.mark.parametrize("name, code", sorted(MESH_CASES.items()))
def test_rig_mesh_rejects_a_bad_mesh_cleanly(corpus: Path, tmp_path: Path, name: str, code: str) -> None:
    save_markers(tmp_path / "m.json", [[0, 0, 0], [0, 0, 1]])
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "backend", "rig-mesh", str(corpus / name), "--markers", str(tmp_path / "m.json"),
         "-o", str(out), "--json"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert_clean_failure(done, code, tmp_path, out)


def test_unreadable_path_and_unwritable_output_fail_cleanly(corpus: Path, tmp_path: Path) -> None:
    save_markers(tmp_path / "m.json", [[0, 0, 0], [0, 0, 1]])
    good_mesh = REPO / "examples" / "humanoid" / "mesh.glb"
    cases = [
        (tmp_path / "no" / "such" / "mesh.glb", tmp_path / "out", "unreadable_file"),
        (corpus,  tmp_path / "out", "unreadable_file"),                          # a folder, not a file
        (good_mesh, tmp_path / "m.json" / "out", "output_not_writable"),        # parent is a file
    ]
    for mesh, out, code in cases:
        done = subprocess.run(
            [sys.executable, "-m", "backend", "rig-mesh", str(mesh), "--markers", str(tmp_path / "m.json"),
             "-o", str(out), "--json"], capture_output=True, text=True, cwd=REPO, timeout=300)
        assert_clean_failure(done, code, tmp_path, out)
