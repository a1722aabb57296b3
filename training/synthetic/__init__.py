"""Synthetic articulated bodies with exact 3D ground truth, for training and evaluating keypoint discovery.

Five categories (humanoid on the 17-joint Human3.6M skeleton, driven by CMU motion capture; quadruped; bird;
snake; many-legged), each a union of closed capsules/ellipsoids on a true skeleton with true skin weights,
posed by linear blend skinning, normalised into the canonical frame and rendered from the SV3D-p orbit.

Modules, one job each:
    bvh        read BVH files, forward kinematics
    retarget   CMU clip -> rotations of our humanoid's bones
    shapes     closed primitive surfaces;  body: Part/Body, mesh + true weights
    humanoid, animals   the body builders;  palette: colours and skeleton helpers
    poses      random poses within limits, snake waves, mocap poses, LBS
    sample     one sample: build, canonicalise, render, write (folder layout in its docstring)
    dataset    plans (splits by clip and body) and writes whole datasets (layout in its docstring)
    examples   the committed example bodies under examples/

Command line: `python training/make_synthetic.py --out DIR --n N --seed S`.
"""

from .dataset import DatasetSettings, load_clips, plan, write_dataset
from .sample import BUILDERS, CATEGORIES, Sample, SampleSpec, build_sample, render_sample, write_sample

__all__ = [
    "BUILDERS", "CATEGORIES", "DatasetSettings", "Sample", "SampleSpec", "build_sample", "load_clips", "plan",
    "render_sample", "write_dataset", "write_sample",
]
