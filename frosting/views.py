"""Training views as tensors: a ViewSet resized to the preset's resolution, with matching intrinsics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from backend.errors import KeyDiffError
from backend.views.viewset import ViewSet


@dataclass
class TrainViews:
    images: Tensor      # [C, H, W, 3] float32 in [0, 1], sRGB, white background
    masks: Tensor       # [C, H, W] float32 in [0, 1] (area-averaged when downsized)
    viewmats: Tensor    # [C, 4, 4] OpenCV world-to-camera
    Ks: Tensor          # [C, 3, 3] pixel intrinsics at this resolution
    width: int
    height: int

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def camera_centres(self) -> Tensor:
        """[C, 3] world positions of the cameras."""
        R, t = self.viewmats[:, :3, :3], self.viewmats[:, :3, 3:]
        return -(R.transpose(1, 2) @ t).squeeze(-1)

    @property
    def extent(self) -> float:
        """3DGS's `spatial_lr_scale`: 1.1 x the largest camera distance from the cameras' centroid."""
        c = self.camera_centres
        return float(1.1 * (c - c.mean(0)).norm(dim=1).max().clamp_min(1e-3))

    def to(self, device: str | torch.device) -> "TrainViews":
        return TrainViews(self.images.to(device), self.masks.to(device), self.viewmats.to(device),
                          self.Ks.to(device), self.width, self.height)

    def subset(self, index) -> "TrainViews":
        return TrainViews(self.images[index], self.masks[index], self.viewmats[index], self.Ks[index],
                          self.width, self.height)


def train_views(views: ViewSet, resolution: int) -> TrainViews:
    """Resize (box filter) so the longer side is `resolution` pixels; K is scaled to match exactly."""
    if len(views) == 0:
        raise KeyDiffError("invalid_argument", "need at least one view to reconstruct from, got 0")
    width, height = views.size
    scale = resolution / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    images, masks = [], []
    for image, mask in zip(views.images, views.masks):
        images.append(np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BOX)))
        mask_img = Image.fromarray((mask * 255).astype(np.uint8)).resize((new_w, new_h), Image.BOX)
        masks.append(np.asarray(mask_img))
    Ks = np.stack([c.K for c in views.cameras]).copy()
    Ks[:, 0] *= new_w / width
    Ks[:, 1] *= new_h / height
    viewmats = np.zeros((len(views), 4, 4))
    viewmats[:, :3, :3] = np.stack([c.R for c in views.cameras])
    viewmats[:, :3, 3] = np.stack([c.t for c in views.cameras])
    viewmats[:, 3, 3] = 1.0
    return TrainViews(images=torch.from_numpy(np.stack(images)).float() / 255.0,
                      masks=torch.from_numpy(np.stack(masks)).float() / 255.0,
                      viewmats=torch.from_numpy(viewmats).float(), Ks=torch.from_numpy(Ks).float(),
                      width=new_w, height=new_h)
