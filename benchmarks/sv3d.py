"""SV3D-p timings and memory on this machine (CPU), and the numbers behind the VRAM estimate in docs/sv3d.md.

    python benchmarks/sv3d.py            # tiny-model loops + meta shapes (about a minute)
    python benchmarks/sv3d.py --full     # also full-size random-weight UNet/VAE/CLIP forwards on CPU (~10 min, 12 GB RAM)

Each full-size measurement runs in its own process so its peak RSS (ru_maxrss) is its own. Weights are random
(the real ones cannot reach this machine); time and memory do not depend on their values.
Writes benchmarks/results/sv3d.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = REPO / "benchmarks" / "results" / "sv3d.json"


def _rss_gb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e6
    return float("nan")


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _random_init_(module) -> None:
    import torch

    with torch.no_grad():
        for param in module.parameters():
            param.normal_(0.0, 0.02)


def worker_unet(frames: int) -> dict:
    """One full-size SV3D-p UNet forward (fp32, batch 1, `frames` frames at 72×72) on CPU."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import UNetSpatioTemporalConditionModel

    from backend.views.sv3d_models import SV3D_P_UNET_CONFIG
    from backend.views.sv3d_unet import sv3d_unet_forward

    with init_empty_weights():
        unet = UNetSpatioTemporalConditionModel(**SV3D_P_UNET_CONFIG)
    unet = unet.to_empty(device="cpu")
    _random_init_(unet)
    unet.eval()
    base = _rss_gb()
    g = torch.Generator().manual_seed(0)
    args = (
        torch.randn(1, frames, 8, 72, 72, generator=g),
        torch.tensor(0.1),
        torch.randn(1, 1, 1024, generator=g),
        torch.randn(1, frames, 1280, generator=g),
    )
    start = time.perf_counter()
    with torch.no_grad():
        sv3d_unet_forward(unet, *args)
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": seconds, "weights_rss_gb": base, "peak_rss_gb": _peak_gb(),
            "activation_peak_gb": _peak_gb() - base}


def worker_vae(frames: int) -> dict:
    """Full-size SD kl-f8 VAE: decode `frames` 72×72 latents to 576 px, fp32, on CPU."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    ).eval()
    params = sum(p.numel() for p in vae.parameters())
    base = _rss_gb()
    start = time.perf_counter()
    with torch.no_grad():
        vae.decode(torch.randn(frames, 4, 72, 72)).sample
    seconds = time.perf_counter() - start
    return {"frames": frames, "params_m": params / 1e6, "seconds": seconds, "weights_rss_gb": base,
            "peak_rss_gb": _peak_gb(), "activation_peak_gb": _peak_gb() - base}


def worker_clip() -> dict:
    """Open-CLIP ViT-H-14 vision tower as CLIPVisionModelWithProjection (SVD's image_encoder config), one image."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                              patch_size=14, image_size=224, projection_dim=1024, hidden_act="gelu")
    model = CLIPVisionModelWithProjection(config).eval()
    params = sum(p.numel() for p in model.parameters())
    start = time.perf_counter()
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224)).image_embeds
    return {"params_m": params / 1e6, "seconds": time.perf_counter() - start, "peak_rss_gb": _peak_gb()}


def run_worker(name: str, *args) -> dict:
    code = f"import json, benchmarks.sv3d as b; print(json.dumps(b.worker_{name}(*{args!r})))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"}
    return json.loads(run.stdout.strip().splitlines()[-1])


def tiny_measurements() -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from backend.cameras import orbit_azimuths_deg
    from backend.views.sv3d import run_generate
    from backend.views.sv3d_conditioning import orbit_polars_azimuths
    from backend.views.sv3d_features import meta_decoder_shapes
    from backend.views.sv3d_models import SV3D_P_UNET_CONFIG, save_sv3d_models, tiny_sv3d_models
    from backend.views.sv3d_sampler import FeatureRequest, sample_orbit

    out: dict = {}
    start = time.perf_counter()
    params, shapes = meta_decoder_shapes(SV3D_P_UNET_CONFIG)
    out["meta_full_size"] = {
        "seconds": time.perf_counter() - start,
        "unet_params_m": round(params / 1e6, 1),
        "decoder_taps": {k: list(v) for k, v in shapes.items()},
        "tap_channels_total": sum(v[1] for v in shapes.values()),
        # shapes are [21, C, H, W]: per view = C·H·W values, 2 bytes each in fp16
        "fp16_mb_per_view_native": sum(v[1] * v[2] * v[3] for v in shapes.values()) * 2 / 1e6,
    }

    for threads in (1, 2):
        torch.set_num_threads(threads)
        models = tiny_sv3d_models(seed=0, num_frames=4)
        polars, azimuths = orbit_polars_azimuths(orbit_azimuths_deg(4), 10.0)
        image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            sample_orbit(models, image, polars, azimuths, steps=2, seed=0, features=FeatureRequest((3, 0)))
            times.append(time.perf_counter() - start)
        out[f"tiny_4_frames_8x8_2_steps_threads_{threads}"] = {"first_s": times[0], "warm_s": min(times[1:])}

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_sv3d_models(tiny_sv3d_models(seed=0, num_frames=21), Path(tmp) / "tiny")
        pixels = np.zeros((100, 80, 4), dtype=np.uint8)
        pixels[20:70, 15:60] = [200, 40, 40, 255]
        Image.fromarray(pixels).save(Path(tmp) / "photo.png")
        for steps in (2, 10):
            start = time.perf_counter()
            result = run_generate(Path(tmp) / "photo.png", Path(tmp) / f"out{steps}", weights=weights, steps=steps,
                                  device="cpu")
            out[f"tiny_21_frames_run_generate_{steps}_steps"] = {"seconds": time.perf_counter() - start,
                                                                 "reported_s": result.seconds}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also run full-size random-weight forwards (slow, ~12 GB RAM)")
    args = parser.parse_args()
    import torch

    record = {
        "benchmark": "sv3d",
        "date": datetime.date.today().isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average_at_start": os.getloadavg()},
        "note": "shared 2-core CPU; other jobs were running, so times are upper bounds",
    }
    record["tiny"] = tiny_measurements()
    if args.full:
        record["full_size_cpu_fp32"] = {
            "unet_forward": [run_worker("unet", f) for f in (1, 3)],
            "vae_decode": [run_worker("vae", f) for f in (1, 2)],
            "clip_encode": run_worker("clip"),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, prefix=".sv3d-")
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, indent=1)
    os.replace(tmp, RESULTS)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
