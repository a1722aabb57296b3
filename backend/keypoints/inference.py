"""What the pipeline calls: load a checkpoint, predict keypoints + adjacency for one object.

A checkpoint is a torch file holding a dict: `format`, `version`, `model_config` (KeypointNetConfig as a
dict), `model` (state dict), `view_indices` (which of the 21 orbit frames the network reads, input view
first) and optionally training state (ignored here). Only tensors and plain Python values, so it loads with
`weights_only=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.errors import KeyDiffError
from backend.keypoints.network import KeypointNet, KeypointNetConfig

CHECKPOINT_FORMAT = "keydiff3d-keypoints"
CHECKPOINT_VERSION = 1
# SV3D-p frame 20 is the input view; frames 4, 9, 14 sit at ~86, ~171, ~257 degrees of azimuth.
DEFAULT_VIEW_INDICES = (20, 4, 9, 14)


@dataclass
class KeypointInputs:
    """Features already extracted (training cache, or the SV3D stage) plus the cameras of those views."""

    layers: list[torch.Tensor]  # layers[l]: [V, C_l, h_l, w_l] (or [1, V, ...])
    projections: torch.Tensor  # [V, 3, 4] P = K [R | t] in pixels of an image of image_size
    image_size: tuple[int, int]  # (height, width)


@dataclass
class KeypointModel:
    net: KeypointNet
    config: KeypointNetConfig
    view_indices: tuple[int, ...] = DEFAULT_VIEW_INDICES
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _backbone: Any = None

    def backbone(self):
        """The frozen `cnn` backbone, built on first use (the `sv3d` path brings its own features)."""
        if self._backbone is None:
            from backend.keypoints.backbones import build_cnn_backbone

            self._backbone = build_cnn_backbone(self.config).to(self.device)
        return self._backbone


def load_checkpoint_dict(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise KeyDiffError("missing_weights", f"keypoint checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated or not a torch file
        raise KeyDiffError("unreadable_file", f"keypoint checkpoint {path} cannot be read: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise KeyDiffError("unreadable_file", f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    if payload.get("version", 0) > CHECKPOINT_VERSION:
        raise KeyDiffError("unreadable_file", f"{path} has checkpoint version {payload.get('version')}, this code reads <= {CHECKPOINT_VERSION}")
    return payload


def load_keypoint_model(checkpoint_path: str | Path, device: str | torch.device = "cpu") -> KeypointModel:
    """Rebuild the network from the config stored in the checkpoint, load its weights, eval mode."""
    payload = load_checkpoint_dict(checkpoint_path)
    config = KeypointNetConfig.from_dict(payload["model_config"])
    net = KeypointNet(config)
    net.load_state_dict(payload["model"], strict=True)
    device = torch.device(device)
    net.to(device).eval()
    return KeypointModel(net=net, config=config, view_indices=tuple(payload.get("view_indices", DEFAULT_VIEW_INDICES)), device=device)


def camera_projection(camera: Any) -> np.ndarray:
    """P = K [R | t] from a tensor/array [3, 4], or an object with `P`/`projection`/(`K`, `R`, `t`)."""
    for name in ("P", "projection"):
        value = getattr(camera, name, None)
        if value is not None:
            value = value() if callable(value) else value
            return np.asarray(value, dtype=np.float64).reshape(3, 4)
    if all(hasattr(camera, name) for name in ("K", "R", "t")):
        rt = np.concatenate([np.asarray(camera.R, np.float64), np.asarray(camera.t, np.float64).reshape(3, 1)], axis=1)
        return np.asarray(camera.K, np.float64) @ rt
    array = np.asarray(camera, dtype=np.float64)
    if array.shape != (3, 4):
        raise KeyDiffError("invalid_argument", f"camera {type(camera).__name__} is neither a 3x4 matrix nor has K, R, t")
    return array


def _inputs_from_viewset(model: KeypointModel, viewset: Any) -> KeypointInputs:
    images = torch.as_tensor(np.asarray(viewset.images))
    if images.dim() != 4:
        raise KeyDiffError("invalid_image", f"ViewSet.images has shape {tuple(images.shape)}, expected [V, H, W, 3] or [V, 3, H, W]")
    if images.shape[-1] in (3, 4) and images.shape[1] not in (3, 4):
        images = images[..., :3].permute(0, 3, 1, 2)  # [V, 3, H, W]
    images = images.float()
    if images.max() > 1.5:  # uint8 images
        images = images / 255.0
    cameras = list(viewset.cameras)
    count = images.shape[0]
    frames = getattr(viewset, "frames", None)
    if frames is not None:  # a ViewSet says which orbit frame each view shows
        position = {int(frame): n for n, frame in enumerate(np.asarray(frames).reshape(-1))}
        indices = [position[f] for f in model.view_indices if f in position]
    else:  # a bare 21-frame orbit, or exactly the network's views in order
        indices = [i for i in model.view_indices if i < count] if count > model.config.num_views else list(range(count))
    if len(indices) != model.config.num_views:
        raise KeyDiffError("invalid_argument", f"the view set has {count} views; the network needs {model.config.num_views} "
                           f"(orbit frames {list(model.view_indices)})")
    selected = images[indices].to(model.device)  # [V, 3, H, W]
    projections = torch.as_tensor(np.stack([camera_projection(cameras[i]) for i in indices]), dtype=torch.float32)
    layers = model.backbone()(selected.unsqueeze(0))
    return KeypointInputs([layer[0] for layer in layers], projections, tuple(images.shape[-2:]))


@torch.no_grad()
def predict_keypoints(model: KeypointModel, viewset_or_features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [K, 3] in the canonical frame and the symmetric adjacency [K, K], as float64 numpy arrays.

    Accepts a ViewSet-like object (`images`, `cameras`; the network's views are picked from the 21-frame
    orbit) or `KeypointInputs` with features already extracted (training cache or the SV3D stage).
    """
    inputs = viewset_or_features if isinstance(viewset_or_features, KeypointInputs) else _inputs_from_viewset(model, viewset_or_features)
    layers = [(layer if layer.dim() == 5 else layer.unsqueeze(0)).to(model.device).float() for layer in inputs.layers]
    projections = torch.as_tensor(inputs.projections, dtype=torch.float32, device=model.device)
    projections = projections.unsqueeze(0) if projections.dim() == 3 else projections
    output = model.net(layers, projections, tuple(inputs.image_size))
    keypoints = output.keypoints[0].double().cpu().numpy()
    adjacency = output.adjacency.double().cpu().numpy()
    if not np.isfinite(keypoints).all():
        raise KeyDiffError("invalid_keypoints", "the keypoint network produced non-finite keypoints (bad features or cameras)")
    return keypoints, adjacency
