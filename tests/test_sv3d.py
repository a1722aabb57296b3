"""SV3D-p conditioning, forward, sampling, feature capture and loading, proven on tiny random models.

The real weights (9 GB, gated) never reach CI; these tests pin every piece that decides whether real weights
would work: the sgm conditioning formulas, the per-frame forward against the stock one, the loop's per-frame
guidance, the full-size shapes on the meta device, the weights-folder contract and the output layout.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # these tests never touch the hub

from backend.cameras import ORBIT_FRAMES, orbit_azimuths_deg  # noqa: E402
from backend.errors import KeyDiffError  # noqa: E402
from backend.views.sv3d_conditioning import (  # noqa: E402
    camera_vector,
    orbit_polars_azimuths,
    triangle_guidance,
)
from backend.views.sv3d_features import (  # noqa: E402
    DecoderTaps,
    decoder_tap_names,
    load_features,
    meta_decoder_shapes,
)
from backend.views.sv3d_models import (  # noqa: E402
    SV3D_P_UNET_CONFIG,
    load_sv3d_models,
    save_sv3d_models,
    tiny_sv3d_models,
)
from backend.views.sv3d_sampler import (  # noqa: E402
    FeatureRequest,
    capture_step,
    default_feature_frames,
    sample_orbit,
    sigma_for_tau,
)
from backend.views.sv3d_unet import sv3d_unet_forward  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def frames_independent(models):
    """Turn every spatio-temporal blend fully spatial (sigmoid(50) == 1 in fp32): frames stop mixing."""
    with torch.no_grad():
        for name, param in models.unet.named_parameters():
            if name.endswith("mix_factor"):
                param.fill_(50.0)
    return models


def tiny_orbit(num_frames: int = 4):
    return orbit_polars_azimuths(orbit_azimuths_deg(num_frames), 10.0)


def input_image(size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, size, size, generator=g)


# --- conditioning: the sgm formulas -------------------------------------------------------------------------


def sgm_timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """sgm/modules/diffusionmodules/util.py timestep_embedding, written out: [cos, sin], max period 1e4."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def test_camera_vector_is_sgm_concat_of_cond_aug_polar_and_azimuth_embeddings():
    polars, azimuths = tiny_orbit(ORBIT_FRAMES)
    vector = camera_vector(polars, azimuths, addition_time_embed_dim=256, cond_aug=1e-5)
    assert vector.shape == (21, 1280)
    expected = torch.cat(
        [
            sgm_timestep_embedding(torch.full((21,), 1e-5), 256),
            sgm_timestep_embedding(polars, 512),
            sgm_timestep_embedding(azimuths, 512),
        ],
        dim=1,
    )
    torch.testing.assert_close(vector, expected, atol=1e-5, rtol=1e-5)


def test_default_orbit_angles_match_the_sgm_sampling_script():
    polars, azimuths = orbit_polars_azimuths(orbit_azimuths_deg(21), 10.0)
    # simple_video_sample.py: azimuths_deg = linspace(0, 360, 22)[1:] % 360; rad((a - a[-1]) % 360)
    sgm = np.linspace(0, 360, 22)[1:] % 360
    sgm_rad = np.deg2rad((sgm - sgm[-1]) % 360)
    np.testing.assert_allclose(azimuths.numpy(), sgm_rad, atol=1e-5)
    np.testing.assert_allclose(polars.numpy(), np.deg2rad(80.0), atol=1e-6)
    assert azimuths[-1] == 0.0 and abs(math.degrees(float(azimuths[0])) - 360 / 21) < 1e-4


def test_triangle_guidance_is_one_at_both_ends_and_two_and_a_half_in_the_middle():
    scale = triangle_guidance(21)
    assert scale[0] == pytest.approx(1.0) and scale[20] == pytest.approx(1.0)
    assert scale[10] == pytest.approx(2.5)
    assert scale[1] == pytest.approx(1.15, abs=1e-5)
    torch.testing.assert_close(scale, scale.flip(0))


def test_mismatched_angle_counts_are_rejected_with_a_clear_error():
    with pytest.raises(KeyDiffError) as err:
        camera_vector(torch.zeros(3), torch.zeros(4), addition_time_embed_dim=8)
    assert err.value.code == "invalid_argument" and "3 polar" in err.value.message


# --- the per-frame forward ----------------------------------------------------------------------------------


def test_our_forward_equals_the_stock_forward_when_every_frame_gets_the_same_vector():
    unet = tiny_sv3d_models(seed=1).unet
    batch, frames = 2, 4
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, frames, 8, 8, 8, generator=g)
    context = torch.randn(batch, 1, 32, generator=g)
    ids = torch.randn(batch, 5, generator=g) * 3.0  # stock SVD-style ids, 5 × 8 = 40 = the tiny width
    with torch.no_grad():
        stock = unet(sample, torch.tensor(1.3), context, ids).sample
        per_video = unet.add_time_proj(ids.flatten()).reshape(batch, -1)  # exactly what the stock model embeds
        ours = sv3d_unet_forward(unet, sample, torch.tensor(1.3), context, per_video[:, None].expand(-1, frames, -1))
    torch.testing.assert_close(ours, stock, atol=1e-5, rtol=1e-5)


def test_changing_one_frames_azimuth_changes_that_frame_and_its_vector_only():
    models = frames_independent(tiny_sv3d_models(seed=2))
    polars, azimuths = tiny_orbit(4)
    moved = azimuths.clone()
    moved[1] += 0.7
    image = input_image()
    start = time.perf_counter()
    base = sample_orbit(models, image, polars, azimuths, steps=3, seed=0)
    elapsed = time.perf_counter() - start
    edited = sample_orbit(models, image, polars, moved, steps=3, seed=0)
    vector_change = (base.camera_vectors - edited.camera_vectors).abs().amax(dim=1)  # [F]
    latent_change = (base.latents - edited.latents).abs().flatten(1).amax(dim=1)  # [F]
    assert vector_change[1] > 0.1 and vector_change[[0, 2, 3]].max() == 0
    assert latent_change[1] > 1e-3 and latent_change[[0, 2, 3]].max() == 0
    assert (base.frames[1] - edited.frames[1]).abs().max() > 1e-4
    assert elapsed < 20.0, f"the tiny 4-frame loop took {elapsed:.1f} s"


def test_temporal_layers_spread_a_camera_change_but_the_edited_frame_moves_most():
    models = tiny_sv3d_models(seed=2)  # learned temporal mixing left on, as in the real model
    polars, azimuths = tiny_orbit(4)
    moved = azimuths.clone()
    moved[1] += 0.7
    base = sample_orbit(models, input_image(), polars, azimuths, steps=2, seed=0)
    edited = sample_orbit(models, input_image(), polars, moved, steps=2, seed=0)
    change = (base.latents - edited.latents).abs().flatten(1).mean(dim=1)  # [F]
    assert int(change.argmax()) == 1


def test_guidance_is_per_frame_frames_at_scale_one_match_an_unguided_run():
    models = frames_independent(tiny_sv3d_models(seed=3))
    polars, azimuths = tiny_orbit(5)  # triangle: 1.0, 1.75, 2.5, 1.75, 1.0
    guided = sample_orbit(models, input_image(), polars, azimuths, steps=2, seed=4)
    plain = sample_orbit(models, input_image(), polars, azimuths, steps=2, seed=4, max_guidance=1.0)
    ends = (guided.latents[[0, 4]] - plain.latents[[0, 4]]).abs().max()  # float noise only (batch 2 vs 1)
    middle = (guided.latents[2] - plain.latents[2]).abs().max()
    assert ends < 1e-3 and middle > 100 * ends


def test_sampling_is_deterministic_per_seed_and_the_last_frame_is_the_input():
    models = tiny_sv3d_models(seed=0)
    polars, azimuths = tiny_orbit(4)
    image = input_image()
    first = sample_orbit(models, image, polars, azimuths, steps=2, seed=7)
    again = sample_orbit(models, image, polars, azimuths, steps=2, seed=7)
    other = sample_orbit(models, image, polars, azimuths, steps=2, seed=8)
    assert torch.equal(first.frames, again.frames)
    assert not torch.equal(first.latents, other.latents)
    assert first.frames.shape == (4, 3, 32, 32) and first.latents.shape == (4, 4, 8, 8)
    assert torch.equal(first.frames[-1], image)


def test_bad_images_are_rejected_before_any_model_runs():
    models = tiny_sv3d_models()
    polars, azimuths = tiny_orbit(4)
    with pytest.raises(KeyDiffError) as err:
        sample_orbit(models, torch.rand(3, 30, 30), polars, azimuths, steps=1)
    assert err.value.code == "invalid_image" and "30x30" in err.value.message
    with pytest.raises(KeyDiffError):
        sample_orbit(models, torch.rand(3, 32, 32) * 2, polars, azimuths, steps=1)


def test_attention_slicing_gives_the_same_output_as_sdpa():
    from backend.views.sv3d_models import enable_attention_slicing

    unet = tiny_sv3d_models(seed=4).unet
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(1, 4, 8, 8, 8, generator=g), 0.7, torch.randn(1, 1, 32, generator=g), torch.randn(1, 4, 40, generator=g))
    with torch.no_grad():
        sdpa = sv3d_unet_forward(unet, *args)
        enable_attention_slicing(unet, 1)
        sliced = sv3d_unet_forward(unet, *args)
    torch.testing.assert_close(sliced, sdpa, atol=1e-4, rtol=1e-4)


# --- feature capture ----------------------------------------------------------------------------------------


def test_tau_500_maps_to_sigma_1p62_and_step_34_of_50():
    scheduler = tiny_sv3d_models().scheduler
    sigma = sigma_for_tau(scheduler, 500)
    assert sigma == pytest.approx(1.618, abs=2e-3)
    scheduler.set_timesteps(50)
    step = capture_step(scheduler.sigmas, sigma)
    assert step == 34 and float(scheduler.sigmas[step]) == pytest.approx(1.564, abs=1e-2)
    with pytest.raises(KeyDiffError):
        sigma_for_tau(scheduler, 1000)


def test_default_feature_views_are_the_input_plus_three_spread_frames():
    assert default_feature_frames(4, 21) == (20, 4, 9, 14)
    from backend.keypoints import DEFAULT_VIEW_INDICES

    assert default_feature_frames(4, 21) == tuple(DEFAULT_VIEW_INDICES)   # the frames the network reads
    assert default_feature_frames(1, 21) == (20,)


def test_decoder_taps_keep_the_conditional_video_and_the_chosen_frames_in_fp16():
    unet = tiny_sv3d_models(seed=5).unet
    frames = 4
    g = torch.Generator().manual_seed(1)
    sample = torch.randn(2, frames, 8, 8, 8, generator=g)
    context = torch.randn(2, 1, 32, generator=g)
    vector = torch.randn(2, frames, 40, generator=g)
    full: dict[str, torch.Tensor] = {}
    handles = [
        unet.get_submodule(n).register_forward_hook(lambda _m, _i, out, n=n: full.__setitem__(n, out))
        for n in decoder_tap_names(unet)
    ]
    with torch.no_grad(), DecoderTaps(unet, frames=[3, 0], batch_index=1, num_frames=frames) as taps:
        taps.armed = True
        sv3d_unet_forward(unet, sample, 0.5, context, vector)
    for h in handles:
        h.remove()
    assert list(taps.maps) == decoder_tap_names(unet) and len(taps.maps) == 6
    for name, kept in taps.maps.items():
        assert kept.dtype == torch.float16
        expected = full[name].reshape(2, frames, *full[name].shape[1:])[1, [3, 0]]
        torch.testing.assert_close(kept.float(), expected, atol=2e-3, rtol=2e-3)


def test_features_are_captured_in_the_denoising_run_and_round_trip_through_safetensors(tmp_path):
    models = tiny_sv3d_models(seed=6)
    polars, azimuths = tiny_orbit(4)
    sample = sample_orbit(
        models, input_image(), polars, azimuths, steps=4, seed=0, features=FeatureRequest((3, 1), tau=500)
    )
    feats = sample.features
    assert feats.frames == [3, 1] and feats.step == capture_step(sample.sigmas, sigma_for_tau(models.scheduler, 500))
    assert feats.channels == [64, 64, 64, 32, 32, 32] and feats.resolutions == [4, 4, 4, 8, 8, 8]
    assert feats.azimuths_deg == pytest.approx([0.0, 180.0], abs=1e-4)
    path = feats.save(tmp_path / "features.safetensors")
    loaded = load_features(path)
    assert loaded.taps == feats.taps and loaded.frames == [3, 1] and loaded.sigma == pytest.approx(feats.sigma)
    for name in feats.taps:
        assert torch.equal(loaded.maps[name], feats.maps[name])
    assert loaded.stacked(8).shape == (2, 3 * 64 + 3 * 32, 8, 8)
    assert loaded.view(1)["up_blocks.1.resnets.2"].shape == (32, 8, 8)


def test_a_file_that_is_not_a_features_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(KeyDiffError) as err:
        load_features(path)
    assert err.value.code == "unreadable_file"
    with pytest.raises(KeyDiffError):
        load_features(tmp_path / "missing.safetensors")


def test_full_size_sv3d_p_on_meta_device_has_1525m_parameters_and_10560_tap_channels():
    params, shapes = meta_decoder_shapes(SV3D_P_UNET_CONFIG, num_frames=21, latent_size=72)
    assert round(params / 1e6, 1) == 1525.3
    assert len(shapes) == 12
    assert sum(s[1] for s in shapes.values()) == 10_560
    assert sorted({s[-1] for s in shapes.values()}) == [9, 18, 36, 72]
    assert shapes["up_blocks.0.resnets.0"] == (21, 1280, 9, 9)
    assert shapes["up_blocks.3.resnets.2"] == (21, 320, 72, 72)


# --- weights -------------------------------------------------------------------------------------------------


def test_missing_or_incomplete_weights_give_one_message_saying_where_to_get_and_put_them(tmp_path):
    with pytest.raises(KeyDiffError) as err:
        load_sv3d_models(tmp_path / "nowhere")
    assert err.value.code == "missing_weights" and "huggingface-cli download" in err.value.message
    (tmp_path / "partial" / "unet").mkdir(parents=True)
    (tmp_path / "partial" / "unet" / "config.json").write_text("{}")
    with pytest.raises(KeyDiffError) as err:
        load_sv3d_models(tmp_path / "partial")
    assert "unet/diffusion_pytorch_model.safetensors" in err.value.message and "--weights" in err.value.message
    with pytest.raises(KeyDiffError) as err:
        load_sv3d_models("someone/not-cached-sv3d")  # a hub id, offline: only the local cache is asked
    assert err.value.code == "missing_weights" and "HF_HUB_OFFLINE" in err.value.message


def test_a_diffusers_layout_folder_loads_into_the_stock_classes(tmp_path):
    original = tiny_sv3d_models(seed=9, num_frames=ORBIT_FRAMES)
    save_sv3d_models(original, tmp_path / "tiny")
    config_path = tmp_path / "tiny" / "unet" / "config.json"  # named as in chenguolin/sv3d-diffusers
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "_class_name": "SV3DUNetSpatioTemporalConditionModel"}))
    loaded = load_sv3d_models(tmp_path / "tiny", device="cpu")
    for a, b in ((original.unet, loaded.unet), (original.vae, loaded.vae), (original.image_encoder, loaded.image_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert loaded.source == str(tmp_path / "tiny")


def test_an_svd_shaped_unet_is_rejected_as_not_sv3d_p(tmp_path):
    save_sv3d_models(tiny_sv3d_models(), tmp_path / "svd")
    config_path = tmp_path / "svd" / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["projection_class_embeddings_input_dim"] = 24  # SVD: 3 ids × 8
    config_path.write_text(json.dumps(config))
    with pytest.raises(KeyDiffError) as err:
        load_sv3d_models(tmp_path / "svd", device="cpu")
    assert err.value.code == "missing_weights"


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    save_sv3d_models(tiny_sv3d_models(), tmp_path / "tiny")
    with pytest.raises(KeyDiffError) as err:
        load_sv3d_models(tmp_path / "tiny", device="cuda")
    assert err.value.code == "invalid_argument" and "--device cpu" in err.value.message
