"""One synthetic sample: a body of one category, posed, put in the canonical frame, rendered and written.

Folder of one sample (`write_sample`), written to a temporary folder and renamed into place:

    views/         the ViewSet (backend.views.viewset layout): NNN.png, NNN_mask.png, cameras.json
                   (+ depths.npz when asked for)
    joints.json    true joints: canonical frame and body units (metres for humans), names, parents, category,
                   body id, clip id, frame, the body -> canonical 4x4 transform, units
    mesh.glb       the posed mesh in the canonical frame, skinned to the posed true skeleton (true weights)
    weights.npz    the same true weights, sparse: `indices` int32 [V, 4], `weights` float32 [V, 4] (bone order
                   = bones of the rig in joints.json, i.e. tail joints in index order)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from backend.atomic import atomic_output_folder
from backend.cameras import CanonicalTransform, canonical_transform, orbit_cameras
from backend.errors import KeyDiffError
from backend.mesh import Mesh
from backend.rig import Rig, SkinWeights
from backend.views.render import RenderSettings, render_views

from .animals import build_bird, build_insect, build_quadruped, build_snake, build_spider
from .body import Body, skinned_mesh
from .bvh import BvhClip
from .humanoid import build_humanoid
from .poses import apply_pose, mocap_rotations, random_pose_rotations

SAMPLE_FORMAT = "keydiff3d.synthetic_sample"
SAMPLE_VERSION = 1
CATEGORIES: tuple[str, ...] = ("humanoid", "quadruped", "bird", "snake", "spider", "insect")
BUILDERS: dict[str, Callable[[np.random.Generator, str], Body]] = {
    "humanoid": build_humanoid, "quadruped": build_quadruped, "bird": build_bird, "snake": build_snake,
    "spider": build_spider, "insect": build_insect,
}
YAW_JITTER_DEG = 15.0


@dataclass(frozen=True)
class SampleSpec:
    """Everything that decides a sample; the same spec always gives byte-identical files."""

    sample_id: str                   # e.g. "humanoid_00003", unique within the dataset
    split: str                       # "train" | "test"
    category: str                    # one of CATEGORIES
    body_id: str                     # identity of the body (same id = same proportions and colours)
    body_seed: tuple[int, ...]       # entropy for the body's random generator
    pose_seed: tuple[int, ...]       # entropy for the pose (frame choice, random rotations, yaw)
    clip_id: str | None = None       # motion-capture clip (humanoids), None = random pose
    frame: int | None = None         # frame of that clip


@dataclass(frozen=True)
class Sample:
    spec: SampleSpec
    body: Body                       # rest pose, body units
    mesh: Mesh                       # [V] posed, canonical frame, vertex colours
    rig: Rig                         # posed true skeleton, canonical frame
    weights: SkinWeights             # true weights (construction), [V, 4]
    joints_body: np.ndarray          # [J, 3] posed joints in body units (metres for humans)
    to_canonical: CanonicalTransform


def build_sample(spec: SampleSpec, clips: dict[str, BvhClip] | None = None,
                 yaw_jitter_deg: float = YAW_JITTER_DEG) -> Sample:
    """Build, pose and normalise one body (no rendering, no files)."""
    if spec.category not in BUILDERS:
        raise KeyDiffError("invalid_argument", f"unknown category {spec.category!r}; expected one of {CATEGORIES}")
    body = BUILDERS[spec.category](np.random.default_rng(list(spec.body_seed)), spec.body_id)
    rest, weights, _ = skinned_mesh(body)
    pose_rng = np.random.default_rng(list(spec.pose_seed))
    yaw = pose_rng.uniform(-yaw_jitter_deg, yaw_jitter_deg)
    if spec.clip_id is not None:
        if clips is None or spec.clip_id not in clips:
            raise KeyDiffError("invalid_argument", f"sample {spec.sample_id} needs motion clip {spec.clip_id!r}, "
                                                   f"which was not loaded")
        rotations = mocap_rotations(body.rig, clips[spec.clip_id], int(spec.frame), yaw_offset_deg=yaw)
        posed = apply_pose(body, rest.vertices, weights, rotations)
        vertices, joints = posed.vertices, posed.joints
    else:
        posed = apply_pose(body, rest.vertices, weights, random_pose_rotations(body, pose_rng))
        spin = Rotation.from_euler("z", yaw, degrees=True).as_matrix()
        vertices, joints = posed.vertices @ spin.T, posed.joints @ spin.T
    # The project's one canonical fit (the same as rig-mesh uses), so a network sees one scale: the farthest
    # vertex from the box centre sits on a sphere every orbit camera sees whole.
    to_canonical = canonical_transform(vertices)
    mesh = replace(rest, vertices=to_canonical.apply(vertices), normals=None).validate()
    rig = Rig(to_canonical.apply(joints), body.rig.parents, body.rig.names)
    return Sample(spec, body, mesh, rig, weights, joints, to_canonical)


def render_sample(sample: Sample, image_size: int, frames: Sequence[int],
                  settings: RenderSettings = RenderSettings()):
    """The sample's ViewSet from the SV3D-p orbit frames `frames`."""
    cameras = orbit_cameras(image_size=image_size, frames=frames)
    return render_views(sample.mesh, cameras, frames=list(frames), settings=settings)


def sample_record(sample: Sample, image_size: int, frames: Sequence[int]) -> dict:
    """The joints.json content (plain JSON types, stable key order)."""
    spec, body = sample.spec, sample.body
    return {
        "format": SAMPLE_FORMAT, "version": SAMPLE_VERSION,
        "sample_id": spec.sample_id, "split": spec.split, "category": spec.category, "body_id": spec.body_id,
        "clip_id": spec.clip_id, "frame": spec.frame,
        "names": list(sample.rig.names), "parents": sample.rig.parents.tolist(),
        "joints_canonical": sample.rig.joints.tolist(),
        "joints_body": np.asarray(sample.joints_body).tolist(),
        "body_units": body.units,
        "body_to_canonical": sample.to_canonical.to_list(),
        "body_facts": dict(sorted(body.extras.items())),
        "views": {"folder": "views", "image_size": int(image_size), "frames": [int(f) for f in frames]},
        "mesh": {"file": "mesh.glb", "vertices": sample.mesh.num_vertices, "faces": int(len(sample.mesh.faces))},
    }


def write_sample(sample: Sample, folder: str | Path, image_size: int = 256, frames: Sequence[int] = tuple(range(21)),
                 settings: RenderSettings = RenderSettings(), depths: bool = False) -> Path:
    """Render and write one sample folder (layout in the module docstring), atomically."""
    from backend.export.gltf_writer import write_rigged_gltf

    folder = Path(folder)
    with atomic_output_folder(folder, marker="joints.json", what="synthetic sample folder") as tmp:
        views = render_sample(sample, image_size, frames, settings)
        if not depths:
            views = replace(views, depths=None)
        views.save(tmp / "views")
        record = sample_record(sample, image_size, frames)
        (tmp / "joints.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        write_rigged_gltf(tmp / "mesh.glb", sample.mesh, sample.rig, sample.weights)
        np.savez_compressed(tmp / "weights.npz", indices=sample.weights.indices, weights=sample.weights.weights)
    return folder
