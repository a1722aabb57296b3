"""The SV3D-p UNet forward: the stock diffusers UNet's blocks, with a per-frame added embedding.

`UNetSpatioTemporalConditionModel.forward` embeds one `added_time_ids` row per *video* and repeats it over
frames; SV3D-p needs one camera per *frame*. The weights are the same (the extra Timesteps projections have
no parameters), so SV3D-p checkpoints load into the stock class and only this walk through its blocks is
ours. It follows the stock forward step by step; tests pin it to the stock output when all frames share one
vector.
"""

from __future__ import annotations

import torch
from diffusers import UNetSpatioTemporalConditionModel


def sv3d_unet_forward(
    unet: UNetSpatioTemporalConditionModel,
    sample: torch.Tensor,  # [B, F, C_in, h, w] noisy latent (already c_in-scaled) ++ conditioning latent
    timestep: torch.Tensor | float,  # scalar or [B]: the scheduler's timestep (0.25·ln σ for SV3D)
    encoder_hidden_states: torch.Tensor,  # [B, 1, D] CLIP image embedding per video
    added_vector: torch.Tensor,  # [B, F, P] per-frame input of add_embedding (the camera vector)
) -> torch.Tensor:  # [B, F, C_out, h, w]
    """Run the UNet with one added-embedding input per frame instead of one per video."""
    batch, frames = sample.shape[:2]
    expected_width = unet.add_embedding.linear_1.in_features
    if added_vector.shape != (batch, frames, expected_width):
        raise ValueError(
            f"added_vector has shape {tuple(added_vector.shape)}; expected {(batch, frames, expected_width)} "
            "(batch, frames, add_embedding input width)"
        )

    up_factor = 2**unet.num_upsamplers
    forward_upsample_size = any(s % up_factor != 0 for s in sample.shape[-2:])

    # 1. time: one timestep per video, broadcast to frames like the stock model does.
    timesteps = torch.as_tensor(timestep, device=sample.device)
    if timesteps.ndim == 0:
        timesteps = timesteps[None]
    timesteps = timesteps.expand(batch)
    t_emb = unet.time_proj(timesteps).to(dtype=sample.dtype)  # [B, c0]
    emb = unet.time_embedding(t_emb)  # [B, E]
    emb = emb.repeat_interleave(frames, dim=0)  # [B·F, E]
    # The one change: the added embedding is per frame, then summed with the repeated time embedding.
    emb = emb + unet.add_embedding(added_vector.reshape(batch * frames, -1).to(emb.dtype))  # [B·F, E]

    flat = sample.flatten(0, 1)  # [B·F, C_in, h, w]
    context = encoder_hidden_states.repeat_interleave(frames, dim=0)  # [B·F, 1, D]
    image_only_indicator = torch.zeros(batch, frames, dtype=flat.dtype, device=flat.device)

    # 2. down
    hidden = unet.conv_in(flat)
    skips: tuple[torch.Tensor, ...] = (hidden,)
    for block in unet.down_blocks:
        kwargs = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
        hidden, res = block(
            hidden_states=hidden, temb=emb, image_only_indicator=image_only_indicator, **kwargs
        )
        skips += res

    # 3. mid
    hidden = unet.mid_block(
        hidden_states=hidden,
        temb=emb,
        encoder_hidden_states=context,
        image_only_indicator=image_only_indicator,
    )

    # 4. up (the decoder: where feature taps sit)
    upsample_size = None
    for i, block in enumerate(unet.up_blocks):
        n = len(block.resnets)
        res, skips = skips[-n:], skips[:-n]
        if i < len(unet.up_blocks) - 1 and forward_upsample_size:
            upsample_size = skips[-1].shape[2:]
        kwargs = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
        hidden = block(
            hidden_states=hidden,
            temb=emb,
            res_hidden_states_tuple=res,
            upsample_size=upsample_size,
            image_only_indicator=image_only_indicator,
            **kwargs,
        )

    # 5. out
    out = unet.conv_out(unet.conv_act(unet.conv_norm_out(hidden)))
    return out.reshape(batch, frames, *out.shape[1:])
