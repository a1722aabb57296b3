"""Rigging quality metrics: skeletons against a reference skeleton, skin weights against reference weights."""

from .skeleton import SkeletonScores, skeleton_metrics, unit_cube_transform
from .skinning import SkinningScores, benchmark_poses, skinning_metrics

__all__ = [
    "SkeletonScores", "SkinningScores", "benchmark_poses", "skeleton_metrics", "skinning_metrics", "unit_cube_transform",
]
