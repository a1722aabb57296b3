"""`run_generate` and training/prepare.py end to end, on a tiny random SV3D-shaped model in a weights folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"

from backend.cameras import orbit_cameras  # noqa: E402
from backend.errors import KeyDiffError  # noqa: E402
from backend.views.sv3d import run_generate, white_background_masks  # noqa: E402
from backend.views.sv3d_features import load_features  # noqa: E402
from backend.views.sv3d_models import save_sv3d_models, tiny_sv3d_models  # noqa: E402
from backend.views.viewset import ViewSet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """A 21-frame tiny SV3D-p in diffusers layout (32-px views, 8×8 latents)."""
    return save_sv3d_models(tiny_sv3d_models(seed=0, num_frames=21), tmp_path_factory.mktemp("weights") / "tiny")


def write_cutout(path: Path, box=(10, 20, 50, 70), size=(80, 100)) -> Path:
    pixels = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = [30, 90, 200, 255]
    Image.fromarray(pixels).save(path)
    return path


def test_generate_writes_21_views_masks_cameras_and_features(tmp_path, tiny_weights):
    photo = write_cutout(tmp_path / "photo.png")
    stages = []

    class Recorder:  # the shape of backend.progress objects the CLI passes
        def stage(self, name, fraction=0.0, message=""):
            stages.append(name)

    result = run_generate(photo, tmp_path / "out", weights=tiny_weights, steps=2, seed=0, device="cpu", progress=Recorder())
    out = tmp_path / "out"
    views = ViewSet.load(out / "views")
    assert len(views) == 21 and views.size == (32, 32) and views.frames.tolist() == list(range(21))
    expected = orbit_cameras(image_size=32)
    assert all(np.allclose(a.R, b.R) and np.allclose(a.t, b.t) for a, b in zip(views.cameras, expected))
    assert views.masks[20].any() and not views.masks[20].all()  # the input's own alpha
    features = load_features(out / "features.safetensors")
    assert features.frames == [20, 4, 9, 14] and len(features.taps) == 6
    summary = json.loads((out / "generate.json").read_text())
    assert summary["settings"]["steps"] == 2 and summary["weights"] == str(tiny_weights)
    assert summary["orbit_check"] is not None and set(summary["orbit_check"]["mean_iou"]) == {"1", "-1"}
    assert {"load", "preprocess", "encode", "denoise", "decode", "write"} <= set(stages)
    assert result.features_path == out / "features.safetensors"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folders left


def test_a_failed_generate_leaves_no_output_folder(tmp_path, tiny_weights):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    with pytest.raises(KeyDiffError) as err:
        run_generate(broken, tmp_path / "out", weights=tiny_weights, steps=1, device="cpu")
    assert err.value.code == "invalid_image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.png"]


def test_generate_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path, tiny_weights):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("mine")
    with pytest.raises(KeyDiffError) as err:
        run_generate(write_cutout(tmp_path / "p.png"), tmp_path / "out", weights=tiny_weights, steps=1, device="cpu")
    assert err.value.code == "output_not_writable"
    assert (tmp_path / "out" / "precious.txt").read_text() == "mine"


def test_masks_of_views_on_white_keep_the_object_and_fill_its_holes():
    images = np.full((1, 40, 40, 3), 255, dtype=np.uint8)
    images[0, 10:30, 10:30] = [20, 20, 20]
    images[0, 18:22, 18:22] = 255  # a white hole inside the object
    images[0, 2, 2] = 0  # a speck
    masks = white_background_masks(images)
    assert masks[0, 10:30, 10:30].all() and masks[0].sum() == 400


def test_prepare_caches_every_photo_splits_by_shard_and_resumes(tmp_path, tiny_weights):
    from training.prepare import main, prepare

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        write_cutout(photos / name)
    (photos / "d.png").write_bytes(b"corrupt")
    cache = tmp_path / "cache"
    logs = []
    first = prepare(photos, cache, shard=(0, 2), weights=str(tiny_weights), steps=1, device="cpu", log=logs.append)
    second = prepare(photos, cache, shard=(1, 2), weights=str(tiny_weights), steps=1, device="cpu", log=logs.append)
    # items sorted: a, b, d, sub__c → shard 0 gets a, d; shard 1 gets b, sub__c
    assert (first["done"], first["failed"], second["done"], second["failed"]) == (1, 1, 2, 0)
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == ["a", "b", "sub__c"]
    assert "d" in json.loads((cache / "failed-0-of-2.json").read_text())
    for item in ("a", "b", "sub__c"):
        assert load_features(cache / item / "features.safetensors").frames == [20, 4, 9, 14]
    stamp = (cache / "a" / "generate.json").stat().st_mtime_ns
    again = prepare(photos, cache, shard=(0, 1), weights=str(tiny_weights), steps=1, device="cpu", log=logs.append)
    assert again["skipped"] == 3 and again["done"] == 0 and again["failed"] == 1  # only the corrupt one retried
    assert (cache / "a" / "generate.json").stat().st_mtime_ns == stamp
    assert main(["--images", str(photos), "--out", str(cache), "--shard", "2/2"]) == 2  # bad shard


@pytest.mark.slow  # a fresh interpreter importing torch + diffusers: ~10-20 s on a shared CPU
def test_prepare_runs_as_a_script(tmp_path, tiny_weights):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_cutout(photos / "one.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(REPO / "training" / "prepare.py"), "--images", str(photos), "--out", str(tmp_path / "c"),
         "--weights", str(tiny_weights), "--steps", "1", "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1])["done"] == 1
    assert (tmp_path / "c" / "one" / "views" / "cameras.json").is_file()
