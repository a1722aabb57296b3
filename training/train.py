"""Unsupervised training of the keypoint network: reconstruct views from keypoint edge maps.

    python training/train.py --config training/configs/cpu.yaml [--resume]
    torchrun --nproc_per_node 2 training/train.py --config ...      (DDP: gloo on CPU, nccl on CUDA)

One step: keypoints from the cached features of V views -> project into T random target views -> edge map
(+ keypoint heatmaps) -> the reconstruction UNet redraws the target view from the affine-augmented input
view -> 1.0 * perceptual + 0.5 * ||E - M||^2. All randomness of step n comes from a generator seeded by
(seed, n, rank), and checkpoints (written atomically) hold model, reconstruction net, optimiser and RNG
states, so a run killed at any point resumes from its last checkpoint and produces the same next losses.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `backend` and `training` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from backend.errors import KeyDiffError
from backend.keypoints.backbones import build_cnn_backbone
from backend.keypoints.inference import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from backend.keypoints.network import KeypointNet
from backend.keypoints.volume import heatmap_spread, pixels_to_grid, project_points, render_gaussian_heatmaps
from training.augment import random_affine, random_rotations
from training.config import TrainConfig, TrainSettings, load_config
from training.data import ViewsSplit, cached_features, images_to_tensor, load_views, mirror_split, split_path
from training.edges import render_edge_maps
from training.losses import (LossTerms, LossWeights, PerceptualLoss, concentration_loss, keydiff_loss, mask_loss,
                             mirror_consistency_loss, mirror_partners, rotation_consistency_loss, separation_loss,
                             silhouette_distance_maps, silhouette_loss)
from training.recon import ReconstructionUNet
from training.schedule import SCHEDULES, lr_factor

LOSS_TERMS = ("loss", "perceptual", "mask", "concentration", "separation", "silhouette", "rotation", "mirror")
CSV_FIELDS = ["step", *LOSS_TERMS, "lr", "skipped_steps", "steps_per_s", "elapsed_s"]
MAX_CONSECUTIVE_SKIPS = 25  # this many non-finite steps in a row means the run has diverged, not hit a glitch


@dataclass
class Batch:
    layers: list[torch.Tensor]  # [B, V, C_l, h_l, w_l]
    images: torch.Tensor  # [B, V, 3, S, S] in [0, 1]
    masks: torch.Tensor  # [B, V, 1, S, S] in {0, 1}
    projections: torch.Tensor  # [B, V, 3, 4]
    distances: torch.Tensor | None = None  # [B, V, 1, S, S] distance to the silhouette (silhouette prior only)
    mirror_layers: list[torch.Tensor] | None = None  # features of the mirror images (mirror consistency only)
    mirror_projections: torch.Tensor | None = None  # [B, V, 3, 4] their cameras (training.data.mirror_split)


class TrainingModel(nn.Module):
    """Keypoint network + reconstruction net in one module, so DDP wraps (and syncs) both at once."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self.net = KeypointNet(config.model)
        settings = config.train
        extra = config.model.num_keypoints if settings.use_heatmaps else 0
        self.recon = ReconstructionUNet(3 + 1 + extra, tuple(settings.recon_widths))
        pairs = settings.mirror_pairs if settings.mirror_weight else 0  # unused pairs are not checked against K
        self.register_buffer("partners", mirror_partners(config.model.num_keypoints, pairs), persistent=False)

    def forward(self, batch: Batch, image_size: tuple[int, int], generator: torch.Generator, perceptual: nn.Module) -> LossTerms:
        settings = self.config.train
        output = self.net(batch.layers, batch.projections, image_size)
        count, views = batch.projections.shape[:2]
        targets = torch.randint(views, (count, settings.targets_per_sample), generator=generator)  # [B, T]
        rows = torch.arange(count).unsqueeze(1).expand_as(targets)  # [B, T]
        all_uv, _ = project_points(output.keypoints, batch.projections)  # [B, V, K, 2] pixels
        uv = all_uv[rows, targets].flatten(0, 1)  # [B*T, K, 2]
        size = settings.render_size
        edges = render_edge_maps(pixels_to_grid(uv, image_size), output.adjacency, size, settings.edge_sigma)  # [B*T, 1, S, S]
        heatmaps = render_gaussian_heatmaps(uv, (size, size), image_size, settings.heatmap_sigma) if settings.use_heatmaps else None
        target_images = batch.images[rows, targets].flatten(0, 1)  # [B*T, 3, S, S]
        target_masks = batch.masks[rows, targets].flatten(0, 1)  # [B*T, 1, S, S]
        appearance = random_affine(batch.images[:, 0], generator, settings.affine_rotation_deg, tuple(settings.affine_scale),
                                   settings.affine_translation)  # [B, 3, S, S]
        appearance = appearance.repeat_interleave(settings.targets_per_sample, dim=0)
        reconstruction = self.recon(appearance, edges, heatmaps)
        weights = loss_weights(self.config)
        concentration = concentration_loss(heatmap_spread(output.heatmaps.flatten(2), self.net.centres)) if weights.concentration else None
        separation = separation_loss(output.keypoints, settings.separation_sigma) if weights.separation else None
        silhouette = silhouette_loss(pixels_to_grid(all_uv, image_size), batch.distances) if weights.silhouette else None
        rotation = None
        if weights.rotation:
            turned, _ = self.net.locate(output.view_maps, batch.projections, image_size,
                                        random_rotations(count, generator, settings.rotation_axes))
            rotation = rotation_consistency_loss(output.keypoints, turned)
        mirror = None
        if weights.mirror:
            mirrored = self.net(batch.mirror_layers, batch.mirror_projections, image_size)
            mirror = mirror_consistency_loss(output.keypoints, mirrored.keypoints, self.partners)
        return keydiff_loss(perceptual(reconstruction, target_images), mask_loss(edges, target_masks), concentration,
                            separation, silhouette, rotation, mirror, weights=weights)


def loss_weights(config: TrainConfig) -> LossWeights:
    settings = config.train
    return LossWeights(settings.perceptual_weight, settings.mask_weight, settings.concentration_weight,
                       settings.separation_weight, settings.silhouette_weight, settings.rotation_weight,
                       settings.mirror_weight)


def gradients_are_finite(model: nn.Module) -> bool:
    """False when any gradient holds a NaN or an infinity: that step is skipped instead of poisoning the weights.

    A non-finite gradient can come from a diverging run, but also from a library glitch: PyTorch 2.13's oneDNN
    bfloat16 backward of a 3x3x3 convolution over a 2x2x2 volume now and then returns NaN weight gradients.
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()) if grads else True


def _training_state(model: TrainingModel, optimizer: torch.optim.Optimizer, config: TrainConfig, step: int,
                    skipped: int, ema: AveragedModel | None) -> dict:
    """Everything a resumed run needs to take the same next step: weights, optimizer moments, RNG streams.

    "model" holds the raw weights (training/evaluate.py reads a last.pt like a model.pt); "ema" the average.
    """
    payload = model_payload(model.net, config, step)
    payload.update(recon=model.recon.state_dict(), optimizer=optimizer.state_dict(), rng=_rng_state(),
                   skipped_steps=skipped)
    if ema is not None:
        payload["ema"] = ema.state_dict()
    return payload


def build_ema(net: KeypointNet, decay: float) -> AveragedModel | None:
    """The weight average that model.pt ships when train.ema_decay > 0.

    Why try it: at the constant rate that trains the keypoints best, snapshots differ by ~3 mm P-MPJPE, while
    annealing the rate makes them worse; an average over the last ~1/(1 - decay) steps smooths that noise without
    changing what the network trains on. Measured on one cpu.yaml run: 2 mm better than the raw weights at 60
    minutes, 1.5 mm worse at 120, both inside the regressor-seed spread, so it is off by default
    (docs/training.md). The first update copies the weights.
    """
    if decay <= 0:
        return None
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def autocast(precision: str, device: torch.device):
    """bfloat16 autocast for the convolutions when asked; backend.keypoints.volume keeps the geometry in float32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size:
        return images
    flat = images.flatten(0, 1)
    return torch.nn.functional.interpolate(flat, size=(size, size), mode="area").unflatten(0, images.shape[:2])


def build_optimizer(model: TrainingModel, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW: 1e-4 for the keypoint network, 1e-3 for the reconstruction net, x512 for the edge logits (no decay)."""
    settings = config.train
    adjacency = set(id(p) for p in model.net.adjacency_parameters())
    keypoint_params = [p for p in model.net.parameters() if id(p) not in adjacency]
    groups = [
        {"params": keypoint_params, "lr": settings.lr, "weight_decay": settings.weight_decay},
        {"params": model.net.adjacency_parameters(), "lr": settings.lr * settings.adjacency_lr_mult, "weight_decay": 0.0},
        {"params": list(model.recon.parameters()), "lr": settings.recon_lr, "weight_decay": settings.weight_decay},
    ]
    return torch.optim.AdamW(groups)


def atomic_torch_save(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        torch.save(payload, temp)
        os.chmod(temp, 0o644)  # mkstemp makes files private; checkpoints are meant to be shared
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def model_payload(net: KeypointNet, config: TrainConfig, step: int) -> dict:
    """What inference needs (backend.keypoints.load_keypoint_model reads exactly this)."""
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model_config": net.config.to_dict(),
            "model": net.state_dict(), "view_indices": list(config.data.frames), "step": step,
            "train_config": json.dumps(config.to_dict())}


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _rng_state() -> dict:
    """Global RNG states as tensors and plain values, so checkpoints load with weights_only=True."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached]}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))


def _step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 7_919 + rank)


class RunLog:
    """CSV always; TensorBoard when installed and enabled. On resume, rows after the checkpoint are dropped."""

    def __init__(self, out_dir: Path, resume_step: int, tensorboard: bool) -> None:
        self.path = out_dir / "log.csv"
        rows = []
        if resume_step > 0 and self.path.is_file():
            with open(self.path, newline="") as stream:
                rows = [row for row in csv.DictReader(stream) if int(row["step"]) <= resume_step]
        with open(self.path, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
            except ImportError:
                self.writer = None

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as stream:
            csv.DictWriter(stream, fieldnames=CSV_FIELDS).writerow(row)
        if self.writer is not None:
            for key in (*LOSS_TERMS, "lr", "steps_per_s"):
                self.writer.add_scalar(f"train/{key}", row[key], row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _load_sv3d_training_data(config: TrainConfig) -> tuple[ViewsSplit, list[torch.Tensor]]:
    """A training/prepare.py cache: SV3D-p views + decoder features of the feature frames, per photo."""
    from backend.keypoints.backbones import Sv3dFeatureAdapter
    from training.prepare import load_prepared

    items = load_prepared(config.resolve(config.data.path))
    if not items:
        raise KeyDiffError("unreadable_file", f"no finished items in the SV3D cache {config.data.path}")
    if config.data.max_samples:
        items = items[: config.data.max_samples]
    adapter = Sv3dFeatureAdapter(config.model.backbone_layers, config.model.layer_channels)
    selected = [adapter.select(item.layers) for item in items]  # per item: layers [1, V, C, h, w]
    layers = [torch.cat([parts[i] for parts in selected]).half() for i in range(len(selected[0]))]
    config.data.frames = list(items[0].frames)  # the checkpoint's view indices are the features' frames
    height, width = items[0].images.shape[1:3]
    split = ViewsSplit(np.stack([item.images for item in items]), np.stack([item.masks for item in items]).astype(np.uint8),
                       np.stack([item.projections for item in items]).astype(np.float32), (height, width),
                       np.asarray(items[0].frames, dtype=np.int64))
    return split, layers


def _load_training_data(config: TrainConfig) -> tuple[ViewsSplit, list[torch.Tensor], ViewsSplit | None, list[torch.Tensor] | None]:
    """The train split and its cached features; with mirror consistency or flips on, also its mirror images and theirs."""
    if config.model.backbone == "sv3d":
        return (*_load_sv3d_training_data(config), None, None)
    source = split_path(config.resolve(config.data.path), "train")
    split = load_views(source).select_views(list(config.data.frames))
    if config.data.max_samples:
        split = ViewsSplit(*(getattr(split, n)[: config.data.max_samples] for n in ("images", "masks", "projections")),
                           split.image_size, split.frames)
    backbone = build_cnn_backbone(config.model)
    backbone_id = f"mobilenet_v2-b0353104|{config.model.backbone_layers}|{config.model.backbone_image_size}"
    cache_dir = config.resolve(config.train.cache_dir)
    layers = cached_features(split, source, cache_dir, backbone, backbone_id)
    if not config.train.uses_mirror_images:
        return split, layers, None, None
    mirrored = mirror_split(split)
    return split, layers, mirrored, cached_features(mirrored, source, cache_dir, backbone, backbone_id + "|mirrored")


def _step_tensors(split: ViewsSplit, settings: TrainSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A split's per-sample training tensors, made once: images [N, V, 3, S, S] and masks [N, V, 1, S, S] at the
    render size, cameras [N, V, 3, 4], and silhouette distances [N, V, 1, S, S] when that prior is on."""
    images = _resize(images_to_tensor(split.images), settings.render_size)
    masks = _resize(torch.from_numpy(split.masks).float().unsqueeze(2), settings.render_size)
    distances = silhouette_distance_maps(masks) if settings.silhouette_weight else None
    return images, masks, torch.from_numpy(split.projections).float(), distances


def _rows(data, index: torch.Tensor):
    """This step's samples of a per-sample tensor or list of feature layers (float16 layers come back float32);
    None for data an optional term did not load."""
    if data is None:
        return None
    if isinstance(data, list):
        return [layer[index].float() for layer in data]
    return data[index]


def _sides(original, mirrored, index: torch.Tensor, swap: torch.Tensor | None, partner: bool = True) -> tuple:
    """This step's rows of a per-sample tensor (or feature layers) and of its mirror image, as (sample, mirror).
    Where `swap` is set the mirror image is the sample and the original its mirror: both sides train alike, so
    the network cannot meet mirror consistency by recognising flipped views and labelling them differently (it
    did, fine-tuning a checkpoint whose legs were labelled front/back: docs/training.md). Without `partner` the
    mirror side is not assembled (None): only the mirror term reads it."""
    sample, mirror = _rows(original, index), _rows(mirrored, index)
    if swap is None or sample is None or mirror is None:
        return sample, mirror if partner else None

    def pick(first: torch.Tensor | list, second: torch.Tensor | list) -> torch.Tensor | list:
        if isinstance(first, list):
            return [pick(a, b) for a, b in zip(first, second)]
        return torch.where(swap.view(-1, *[1] * (first.dim() - 1)), second, first)

    return pick(sample, mirror), (pick(mirror, sample) if partner else None)


def train(config: TrainConfig, resume: bool = False, stop_after: int | None = None, progress: bool = True) -> list[dict]:
    """Run (or resume) training; returns the logged rows of this process. `stop_after` ends early at that step."""
    settings = config.train
    torch.set_num_threads(settings.num_threads)
    rank, world = _distributed()
    out_dir = config.resolve(settings.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split, layers, mirrored, mirror_layers = _load_training_data(config)
    images, masks, projections, distances = _step_tensors(split, settings)
    mirror_images = mirror_masks = mirror_projections = mirror_distances = None
    if mirrored is not None:
        mirror_images, mirror_masks, mirror_projections, mirror_distances = _step_tensors(mirrored, settings)

    torch.manual_seed(settings.seed)  # same initial weights on every rank
    model = TrainingModel(config)
    optimizer = build_optimizer(model, config)
    perceptual = PerceptualLoss(input_size=settings.perceptual_size)
    ema = build_ema(model.net, settings.ema_decay)
    start = skipped = consecutive_skips = 0
    last = out_dir / "last.pt"
    if resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=True)
        model.net.load_state_dict(state["model"])
        model.recon.load_state_dict(state["recon"])
        configured = [group["lr"] for group in optimizer.param_groups]
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and "ema" in state:  # a run that turns EMA on when resumed starts the average there
            ema.load_state_dict(state["ema"])
        for group, lr in zip(optimizer.param_groups, configured):   # moments resume; learning rates follow the config
            group["lr"] = lr
        _set_rng_state(state["rng"])
        start = int(state["step"])
        skipped = int(state.get("skipped_steps", 0))
    ddp = DistributedDataParallel(model) if world > 1 else model
    if rank == 0:
        (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    log = RunLog(out_dir, start, settings.tensorboard) if rank == 0 else None
    rows: list[dict] = []
    end = settings.steps if stop_after is None else min(settings.steps, stop_after)
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=settings.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)

    def save_last(step: int) -> None:
        atomic_torch_save(_training_state(model, optimizer, config, step, skipped, ema), last)

    began = time.perf_counter()
    model.train()
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    partner = bool(settings.mirror_weight)  # flips alone train on one side only
    for step in range(start + 1, end + 1):
        factor = lr_factor(step, settings.steps, settings.lr_schedule, settings.warmup_steps, settings.decay_start,
                           settings.lr_final_ratio)
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor
        generator = _step_generator(settings.seed, step, rank)
        index = torch.randint(len(split), (settings.batch_size,), generator=generator)
        swap = None if mirrored is None else torch.rand(settings.batch_size, generator=generator) < 0.5
        step_layers, step_mirror_layers = _sides(layers, mirror_layers, index, swap, partner)
        step_projections, step_mirror_projections = _sides(projections, mirror_projections, index, swap, partner)
        step_images, _ = _sides(images, mirror_images, index, swap, partner=False)  # the mirror side is only seen, not redrawn
        step_masks, _ = _sides(masks, mirror_masks, index, swap, partner=False)
        step_distances, _ = _sides(distances, mirror_distances, index, swap, partner=False)
        batch = Batch(step_layers, step_images, step_masks, step_projections, step_distances,
                      step_mirror_layers, step_mirror_projections)
        with autocast(settings.precision, projections.device):
            terms = ddp(batch, split.image_size, generator, perceptual)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        if gradients_are_finite(model):
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model.net)
            consecutive_skips = 0
        else:  # DDP averaged the gradients, so every rank takes the same branch
            skipped += 1
            consecutive_skips += 1
            if consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
                raise KeyDiffError("training_diverged", f"{consecutive_skips} steps in a row up to step {step} gave "
                                   "non-finite gradients; lower train.lr or use train.precision fp32")
        values = torch.stack([getattr(terms, "total" if name == "loss" else name).float() for name in LOSS_TERMS]).detach()
        if world > 1:
            dist.all_reduce(values)
            values /= world
        if rank == 0:
            elapsed = time.perf_counter() - began
            row = {"step": step, **{name: float(value) for name, value in zip(LOSS_TERMS, values)},
                   "lr": settings.lr * factor, "skipped_steps": skipped, "steps_per_s": (step - start) / max(elapsed, 1e-9), "elapsed_s": elapsed}
            rows.append(row)
            if step % settings.log_every == 0 or step == end:
                log.write(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
            if step % settings.checkpoint_every == 0 or step == end:
                save_last(step)
        if world > 1 and step % settings.checkpoint_every == 0:
            dist.barrier()
        out_of_time = torch.tensor(float(settings.max_minutes > 0 and time.perf_counter() - began > 60.0 * settings.max_minutes))
        if world > 1:
            dist.all_reduce(out_of_time)  # rank 0's clock decides for everyone
        if out_of_time.item() > 0 and step < end:
            if rank == 0:
                save_last(step)
            end = step
            break
    if rank == 0:
        if end == settings.steps or end < (settings.steps if stop_after is None else min(settings.steps, stop_after)):
            atomic_torch_save(model_payload(model.net if ema is None else ema.module, config, end), out_dir / "model.pt")
            summary = {"steps": end, "planned_steps": settings.steps, "stopped_by_time_limit": end < settings.steps, "world_size": world, "threads": settings.num_threads,
                       "train_seconds_this_process": time.perf_counter() - began, "machine": platform.processor() or platform.machine(),
                       "final_loss": rows[-1]["loss"] if rows else None, "steps_per_s": rows[-1]["steps_per_s"] if rows else None}
            (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        log.close()
        if bar is not None:
            bar.close()
    if world > 1:
        dist.barrier()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML file with model/data/train sections")
    parser.add_argument("--resume", action="store_true", help="continue from <out_dir>/last.pt if it exists")
    parser.add_argument("--out-dir", help="override train.out_dir")
    parser.add_argument("--data", help="override data.path")
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.add_argument("--lr", type=float, help="override train.lr (the keypoint network's learning rate; with "
                        "--resume the optimizer's moments are kept and this rate used from the next step)")
    parser.add_argument("--lr-schedule", choices=SCHEDULES, help="override train.lr_schedule")
    parser.add_argument("--warmup-steps", type=int, help="override train.warmup_steps")
    parser.add_argument("--decay-start", type=int, help="override train.decay_start (cosine: the step the decay begins; "
                        "with --resume, the step resumed from anneals a model trained at a constant rate)")
    parser.add_argument("--ema-decay", type=float, help="override train.ema_decay (0 = ship the raw weights; with --resume "
                        "a run that had none starts its average there)")
    parser.add_argument("--max-minutes", type=float, help="override train.max_minutes (wall clock of this run; 0 = none)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.out_dir:
            config.train.out_dir = args.out_dir
        if args.data:
            config.data.path = args.data
        if args.steps:
            config.train.steps = args.steps
        overrides = {name: getattr(args, name) for name in ("lr", "lr_schedule", "warmup_steps", "decay_start", "ema_decay",
                                                            "max_minutes") if getattr(args, name) is not None}
        config.train = replace(config.train, **overrides)  # a new TrainSettings validates the overrides
        train(config, resume=args.resume, progress=not args.no_progress)
    except KeyDiffError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
