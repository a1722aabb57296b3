"""rig: one photo in, a rigged bundle out (the paper's full path).

    photo -> SV3D-p: 21 orbit views + decoder features -> keypoint network -> keypoints + learned edges
          -> Gaussian Frosting: mesh + Gaussians bound to it -> MST skeleton -> skinning -> bundle

The object is built in the canonical frame (the orbit cameras look at it there), so the bundle's transform is
the identity. Intermediate files live in a hidden work folder beside the output and are removed on any exit.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import KeyDiffError
from ..export.bundle import RigResult, check_bundle_destination, write_bundle
from ..floor_root import ground_point
from ..progress import Progress, SilentProgress
from ..symmetry import mirror_keypoints
from .assemble import SkinningOptions, rig_and_skin
from .keypoint_source import geometry_keypoints, load_network, predict_network, pull_inside
from .preview import PREVIEW_FILE, write_preview


IMAGE_KEYPOINT_SOURCES = ("network", "geometry")


@dataclass(frozen=True)
class RigImageOptions:
    weights: str | None = None        # SV3D-p weights folder or hub id (default $KEYDIFF3D_SV3D_WEIGHTS)
    checkpoint: str | None = None     # keypoint network (default: the shipped one)
    preset: str = "cpu_small"         # frosting quality: cpu_small (CPU minutes) or gpu_full
    steps: int = 50                   # SV3D denoising steps
    seed: int = 0
    device: str | None = None         # None: cuda when available, else cpu
    keypoints: str = "network"        # network (the paper: reads the SV3D views) or geometry (the frosting mesh's
                                      # curve skeleton, no checkpoint needed)
    floor_root: bool = True           # a non-deforming root bone on the floor (backend/floor_root.py)
    symmetry: bool = True             # a mirror-symmetric mesh gets a mirror-symmetric rig with .L/.R names
                                      # (backend/symmetry/; a reconstruction rarely is symmetric enough)
    skinning: SkinningOptions = field(default_factory=SkinningOptions)

    def __post_init__(self) -> None:
        if self.keypoints not in IMAGE_KEYPOINT_SOURCES:
            raise KeyDiffError("invalid_argument",
                               f"--keypoints must be one of {IMAGE_KEYPOINT_SOURCES}, got {self.keypoints!r}")


def rig_image(
    image_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: RigImageOptions = RigImageOptions(),
    progress: Progress = SilentProgress(),
    *,
    sv3d_models=None,
) -> Path:
    """`sv3d_models` lets tests (and batch tools) pass already-loaded models instead of `options.weights`."""
    out_dir = Path(out_dir).expanduser().absolute()
    check_bundle_destination(out_dir)            # fail now, not after minutes of diffusion
    from frosting.config import get_preset       # heavy imports only for this job
    from frosting.export import save_frosting
    from frosting.pipeline import reconstruct

    from ..views.sv3d import run_generate

    preset = get_preset(options.preset)
    device = _auto_device() if options.device in (None, "auto") else options.device
    # a missing checkpoint fails before SV3D runs
    network = load_network(options.checkpoint, device) if options.keypoints == "network" else None
    work = out_dir.parent / f".{out_dir.name}.work-{uuid.uuid4().hex[:8]}"
    try:
        generated = run_generate(image_path, work / "generate", weights=options.weights, steps=options.steps,
                                 seed=options.seed, device=device, progress=progress, models=sv3d_models)
        views = generated.views

        if network is not None:
            progress.stage("keypoints", 0.0, "keypoint network")
            keypoints, adjacency = predict_network(network, views, generated.features_path)
            progress.stage("keypoints", 1.0, f"{len(keypoints)} keypoints")

        reconstruction = reconstruct(views, preset, progress, "cuda" if device.startswith("cuda") else "cpu")
        mesh = reconstruction.mesh.with_normals()
        if network is None:
            progress.stage("keypoints", 0.0, "geometry")
            keypoints, adjacency = geometry_keypoints(mesh)
            progress.stage("keypoints", 1.0, f"{len(keypoints)} keypoints")
        else:
            keypoints = pull_inside(keypoints, mesh)
        mirror = None
        if options.symmetry:
            keypoints, adjacency, mirror = mirror_keypoints(mesh.vertices, mesh.faces, keypoints, adjacency)
        ground = ground_point(mesh.vertices) if options.floor_root else None
        skeleton, weights = rig_and_skin(mesh, keypoints, adjacency, options.skinning, progress, ground=ground,
                                         mirror=mirror)

        progress.stage("export", 0.0, "writing the bundle")
        result = RigResult(
            mesh=mesh, rig=skeleton.rig, weights=weights, canonical_to_object=np.eye(4), keypoints=keypoints,
            adjacency=adjacency, keypoint_to_joint=skeleton.keypoint_to_joint,
            settings={"job": "rig", "source": Path(image_path).name, **asdict(options),
                      "sv3d_weights": str(options.weights or "default"),
                      "mirror": mirror.to_dict() if mirror else None},
        )

        def extras(folder: Path) -> None:
            views.save(folder / "views")
            save_frosting(reconstruction.layer, folder)          # gaussians.ply + binding.npz
            write_preview(folder / PREVIEW_FILE, mesh, result.rig, weights)

        bundle = write_bundle(out_dir, result, extras=extras)
        progress.stage("export", 1.0, str(bundle))
        return bundle
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

