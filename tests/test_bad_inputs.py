"""The bad-input corpus (tests/data/make_bad_inputs.py) through the real command line: one line, a stable code,
a non-zero exit, no traceback, no output and no stray temporary files."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.pipeline.markers import save_markers

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "data"))
from make_bad_inputs import IMAGE_CASES, MESH_CASES, VALID_ODD_IMAGES, make_corpus  # noqa: E402


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


def run_generate_cli(image: Path, out: Path) -> subprocess.CompletedProcess:
    # no weights on this machine: image checks must come first, so a bad photo fails before any model loads
    return subprocess.run(
        [sys.executable, "-m", "backend", "generate", str(image), "-o", str(out), "--json",
         "--weights", str(out.parent / "no-weights-here")],
        capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("name, code", sorted(IMAGE_CASES.items()))
def test_generate_rejects_a_bad_image_before_loading_any_model(corpus: Path, tmp_path: Path, name: str, code: str):
    out = tmp_path / "out"
    assert_clean_failure(run_generate_cli(corpus / name, out), code, tmp_path, out)


@pytest.mark.parametrize("name", VALID_ODD_IMAGES)
def test_greyscale_16_bit_and_cmyk_photos_are_decoded_not_rejected(corpus: Path, tmp_path: Path, name: str):
    # they decode; without a transparent background they then need the optional background remover
    out = tmp_path / "out"
    done = run_generate_cli(corpus / name, out)
    expected = "missing_dependency" if importlib.util.find_spec("rembg") is None else "missing_weights"
    assert_clean_failure(done, expected, tmp_path, out)
