"""Checks with the real SV3D-p weights, for a user who has them (skipped everywhere else).

    KEYDIFF3D_SV3D_WEIGHTS=~/models/sv3d-diffusers .venv/bin/python -m pytest tests/test_sv3d_real_weights.py -m slow

Loading needs about 10 GB of RAM; the generation check needs a CUDA GPU (about 7-9 GB of VRAM, docs/sv3d.md).
Nothing here downloads: the folder must already exist.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.slow

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def weights_folder() -> Path:
    folder = os.environ.get("KEYDIFF3D_SV3D_WEIGHTS", "")
    if not folder or not Path(folder).expanduser().is_dir():
        pytest.skip("set KEYDIFF3D_SV3D_WEIGHTS to a local SV3D-p folder (docs/sv3d.md) to run real-weight checks")
    return Path(folder).expanduser()


def test_real_weights_load_into_the_stock_classes_with_the_sv3d_p_shapes(weights_folder):
    from backend.views.sv3d_models import load_sv3d_models

    models = load_sv3d_models(weights_folder, device="cpu")
    assert round(sum(p.numel() for p in models.unet.parameters()) / 1e6, 1) == 1525.3
    assert models.unet.add_embedding.linear_1.in_features == 1280
    assert models.image_encoder.config.projection_dim == 1024 and models.vae_factor == 8
    assert models.vae.config.scaling_factor == pytest.approx(0.18215)


def test_real_generation_on_gpu_gives_21_views_and_a_decided_orbit_check(weights_folder, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("real SV3D-p generation needs a CUDA GPU (about two days per object on a CPU)")
    from backend.cameras import AZIMUTH_SENSE
    from backend.views.sv3d import run_generate

    # A lopsided cut-out: a body with a bump on one side and a stripe, on a transparent background.
    yy, xx = np.mgrid[:576, :576]
    body = (xx - 260) ** 2 / 150**2 + (yy - 300) ** 2 / 200**2 < 1
    bump = (xx - 400) ** 2 + (yy - 200) ** 2 < 60**2
    pixels = np.zeros((576, 576, 4), dtype=np.uint8)
    pixels[body | bump] = [200, 120, 40, 255]
    pixels[body & (np.abs(yy - 300) < 15)] = [40, 40, 160, 255]
    Image.fromarray(pixels).save(tmp_path / "object.png")

    result = run_generate(tmp_path / "object.png", tmp_path / "out", weights=weights_folder, device="cuda")
    summary = json.loads((tmp_path / "out" / "generate.json").read_text())
    assert len(result.views) == 21 and result.views.masks.reshape(21, -1).any(axis=1).all()
    frames = result.views.images.astype(np.float32)
    assert np.abs(frames[10] - frames[20]).mean() > 5  # the back view is not a copy of the input
    print(json.dumps({k: summary[k] for k in ("seconds", "peak_vram_gb", "orbit_check")}, indent=1))
    assert summary["orbit_check"]["best_sense"] in (AZIMUTH_SENSE, None), summary["orbit_check"]["message"]
