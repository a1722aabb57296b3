"""Skeletons only, seconds per character: rig-mesh's keypoint sources scored against the artists' skeletons.

    .venv/bin/python benchmarks/rigging_geometry.py [--data ../shared/data/rigs] [--sources geometry,snapped,...]
        [--no-symmetry] [--checkpoint CKPT] [--out benchmarks/results/rigging_geometry.json]

The quick companion of benchmarks/rigging.py for skeleton work: the same characters, the same normalisation
(mesh centred on its bounding-box centre, longest side spans [-1, 1]) and the same metrics (CD-J2J / CD-J2B /
CD-B2B, joint precision / recall at 0.1), but no skinning, bundle or bone heat. Each source runs rig-mesh's own
steps: canonical frame -> keypoints -> mirror symmetrisation on a symmetric mesh (backend/symmetry/; off with
--no-symmetry) -> assemble.mesh_skeleton, the function rig-mesh calls (merge, MST, root at the tree centre,
mirror-consistent tree and .L/.R names, floor root under the body) -> back to the asset's frame; the k-means
reference gets neither symmetry nor floor root. Each source's `mirror` entry records the plane found and the
rig's mirror consistency (pairs, centre joints, unpaired joints, inconsistent parents, max mirror error). CD-J2J's two
halves are reported too: `pred_to_true` (mean distance of a predicted joint to the nearest true one: extra or
misplaced joints) and `true_to_pred` (missed joints); CD-J2J is their mean. `seconds` is keypoints + skeleton
(the network's include its orbit renders). The network reads renders of the asset with its texture here, while
rigging.py hands rig-mesh an untextured PLY, so network and snapped scores differ a little between the two
(geometry reads no colour and scores the same).

It also scores each character's truth against itself restricted to the joints a mesh can show: `on_body`
is the artist's skeleton without joints farther than 0.1 from the surface-and-inside of the mesh (root motion
handles on the floor, IK targets), reported beside the full truth so a reader sees how much of a score comes
from joints no geometry can place.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from machine import machine_info, today, write_result  # noqa: E402

from backend.cameras import canonical_transform  # noqa: E402
from backend.curve_joints import (  # noqa: E402
    DEFAULT_BEND_TOLERANCE, DEFAULT_SPACING, DEFAULT_TIP_PULLBACK, DEFAULT_TIP_REACH,
)
from backend.curve_skeleton import (  # noqa: E402
    DEFAULT_COVER_SCALE, DEFAULT_COVER_VOXELS, DEFAULT_RESOLUTION, DEFAULT_SPUR_RATIO,
)
from backend.errors import KeyDiffError  # noqa: E402
from backend.export.gltf_reader import load_skinned_gltf  # noqa: E402
from backend.floor_root import ground_point  # noqa: E402
from backend.metrics.skeleton import (  # noqa: E402
    apply_transform, merge_duplicate_joints, skeleton_metrics, unit_cube_transform,
)
from backend.pipeline.keypoint_source import (  # noqa: E402
    geometry_keypoints, network_keypoints, pull_inside, snap_to_curve_skeleton,
)
from backend.pipeline.assemble import mesh_skeleton  # noqa: E402
from backend.symmetry import mirror_keypoints, mirror_report  # noqa: E402
from backend.views.render import render_orbit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "rigs"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "rigging_geometry.json"
SOURCES = ("geometry", "snapped", "network", "kmeans18")
NO_FLOOR_ROOT = ("kmeans18",)   # the reference point stays a bare MST of vertex clusters ...
NO_SYMMETRY = ("kmeans18",)     # ... with no mirror symmetrisation either
MIN_VERTICES, MIN_BONES = 100, 3
ON_BODY = 0.1          # normalised units: a true joint farther than this from the mesh is off the body


def source_keypoints(source: str, canonical_mesh, checkpoint: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Canonical keypoints [K, 3] and adjacency [K, K] of one source, as rig-mesh computes them (`checkpoint`: the
    network's, None = the shipped one)."""
    if source == "geometry":
        return geometry_keypoints(canonical_mesh)
    if source == "kmeans18":
        from scipy.cluster.vq import kmeans2

        centres, _ = kmeans2(canonical_mesh.vertices, 18, seed=0, minit="++")
        return centres, np.ones((len(centres), len(centres)))
    keypoints, adjacency = network_keypoints(
        checkpoint, lambda size, frames: render_orbit(canonical_mesh, image_size=size, frames=list(frames)))
    if source == "snapped":
        return snap_to_curve_skeleton(keypoints, canonical_mesh), adjacency
    return pull_inside(keypoints, canonical_mesh), adjacency


def score_character(asset, sources: list[str], symmetry: bool = True, checkpoint: str | None = None) -> dict:
    to_canonical = canonical_transform(asset.mesh.vertices)
    canonical_mesh = asset.mesh.transformed(to_canonical.matrix)
    to_unit = unit_cube_transform(asset.mesh.vertices)
    true_joints = apply_transform(to_unit, asset.skeleton_joints)
    on_body = _on_body(apply_transform(to_unit, asset.mesh.vertices), asset.mesh.faces, true_joints)
    out: dict = {"vertices": asset.mesh.num_vertices, "true_joints": len(true_joints),
                 "true_joints_off_body": int((~on_body).sum())}
    for source in sources:
        start = time.perf_counter()
        try:
            keypoints, adjacency = source_keypoints(source, canonical_mesh, checkpoint)
        except KeyDiffError as exc:
            out[source] = {"note": f"unavailable: [{exc.code}] {exc.message}"}
            continue
        origin = to_canonical.apply(np.zeros(3))[0]
        mirror = None
        if symmetry and source not in NO_SYMMETRY:
            keypoints, adjacency, mirror = mirror_keypoints(canonical_mesh.vertices, canonical_mesh.faces,
                                                            keypoints, adjacency, origin)
        ground = None if source in NO_FLOOR_ROOT else ground_point(canonical_mesh.vertices, origin)
        rig = mesh_skeleton(canonical_mesh, keypoints, adjacency, ground=ground, mirror=mirror).rig
        seconds = time.perf_counter() - start
        joints = apply_transform(to_unit, to_canonical.apply_inverse(rig.joints))
        full = skeleton_metrics(joints, rig.parents, true_joints, asset.skeleton_parents)
        body_truth = _keep_joints(true_joints, asset.skeleton_parents, on_body)
        body = skeleton_metrics(joints, rig.parents, *body_truth)
        out[source] = {**full.to_dict(), **_halves(joints, rig.parents, true_joints, asset.skeleton_parents),
                       "seconds": round(seconds, 3), "mirror": _mirror(rig, mirror, to_canonical, to_unit),
                       "on_body": {**body.to_dict(), **_halves(joints, rig.parents, *body_truth)}}
    return out


def _mirror(rig, mirror, to_canonical, to_unit) -> dict | None:
    """The mirror plane and how mirror-consistent the rig is, measured in the normalised frame of the scores
    (max_mirror_error: max |reflect(X.L) - X.R| over the joints named as pairs)."""
    if mirror is None:
        return None
    to_scores = to_unit @ to_canonical.inverse
    report = mirror_report(rig.transformed(to_scores), mirror.transformed(to_scores))
    return {**mirror.to_dict(), **report.to_dict()}


def _halves(joints: np.ndarray, parents: np.ndarray, true_joints: np.ndarray, true_parents: np.ndarray) -> dict:
    """CD-J2J's two directed means, on duplicate-merged joints as skeleton_metrics scores them."""
    from scipy.spatial import cKDTree

    predicted, _ = merge_duplicate_joints(joints, parents)
    truth, _ = merge_duplicate_joints(true_joints, true_parents)
    return {"pred_to_true": float(cKDTree(truth).query(predicted)[0].mean()),
            "true_to_pred": float(cKDTree(predicted).query(truth)[0].mean())}


def _on_body(vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """[J] bool: joints inside the mesh's voxel solid or within ON_BODY of its surface."""
    from scipy.spatial import cKDTree

    from backend.curve_skeleton import solid_voxels

    pitch = 2.0 / 128
    origin = vertices.min(axis=0) - 3 * pitch
    shape = tuple(int(n) for n in np.ceil((vertices.max(axis=0) - origin) / pitch).astype(int) + 3)
    solid = solid_voxels(vertices, faces, origin, pitch, shape)
    centres = origin + (np.argwhere(solid) + 0.5) * pitch
    return cKDTree(centres).query(joints)[0] <= ON_BODY


def _keep_joints(joints: np.ndarray, parents: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The skeleton without the dropped joints; a kept joint hangs from its nearest kept ancestor."""
    new_index = np.cumsum(keep) - 1
    new_parents = []
    for j in np.flatnonzero(keep):
        parent = parents[j]
        while parent >= 0 and not keep[parent]:
            parent = parents[parent]
        new_parents.append(new_index[parent] if parent >= 0 else -1)
    return joints[keep], np.array(new_parents, np.int64)


def _means(characters: dict, sources: list[str]) -> dict:
    mean: dict = {}
    for source in sources:
        rows = [c[source] for c in characters.values() if "cd_j2j" in c.get(source, {})]
        if not rows:
            continue
        keys = ("cd_j2j", "pred_to_true", "true_to_pred", "cd_j2b", "cd_b2b", "precision", "recall", "num_joints",
                "seconds")
        mean[source] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        mean[source]["on_body"] = {k: float(np.mean([r["on_body"][k] for r in rows])) for k in keys[:7]}
        mean[source]["characters"] = len(rows)
    return mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--sources", default=",".join(SOURCES), help=f"comma-separated, from {SOURCES}")
    parser.add_argument("--checkpoint", help="keypoint checkpoint of the network and snapped sources (default: shipped)")
    parser.add_argument("--symmetry", action=argparse.BooleanOptionalAction, default=True,
                        help="mirror-symmetric rigs on mirror-symmetric meshes (rig-mesh's default)")
    args = parser.parse_args()
    sources = [s for s in args.sources.split(",") if s]
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise SystemExit(f"unknown sources {unknown}; choose from {SOURCES}")
    files = sorted(p for p in args.data.glob("*") if p.suffix.lower() in (".glb", ".gltf"))
    if not files:
        raise SystemExit(f"no .glb/.gltf files in {args.data}")
    machine = machine_info(note="2 cores shared with other jobs")
    characters, skipped = {}, {}
    for path in files:
        try:
            asset = load_skinned_gltf(path)
        except KeyDiffError as exc:
            skipped[path.name] = f"not usable: [{exc.code}] {exc.message}"
            continue
        if asset.mesh.num_vertices < MIN_VERTICES or int(asset.rig.bone_deforms.sum()) < MIN_BONES:
            skipped[path.name] = f"toy: {asset.mesh.num_vertices} vertices, {int(asset.rig.bone_deforms.sum())} bones"
            continue
        characters[path.name] = score_character(asset, sources, args.symmetry, args.checkpoint)
        print(path.name, {s: round(characters[path.name][s].get("cd_j2j", float("nan")), 3) for s in sources},
              file=sys.stderr, flush=True)
    result = {
        "benchmark": "skeletons only: rig-mesh keypoint sources against artist skeletons",
        "date": today(),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "machine": machine,
        "protocol": {
            "normalisation": "mesh centred on its bounding-box centre, longest side spans [-1, 1]",
            "joint_tolerance": 0.1, "bone_sample_spacing": 0.005,
            "on_body": f"truth without joints farther than {ON_BODY} from the mesh's solid (floor handles, IK targets)",
            "geometry_settings": {
                "resolution": DEFAULT_RESOLUTION, "cover_scale": DEFAULT_COVER_SCALE,
                "cover_voxels": DEFAULT_COVER_VOXELS, "spur_ratio": DEFAULT_SPUR_RATIO, "spacing": DEFAULT_SPACING,
                "bend_tolerance": DEFAULT_BEND_TOLERANCE, "tip_reach": DEFAULT_TIP_REACH,
                "tip_pullback": DEFAULT_TIP_PULLBACK,
            },
            "checkpoint": args.checkpoint or "shipped (checkpoints/keypoints_cnn_humanoid_cpu.pt)",
            "floor_root": f"added for every source but {', '.join(NO_FLOOR_ROOT)} (rig-mesh's default)",
            "symmetry": (f"mirror-symmetric rigs on mirror-symmetric meshes for every source but "
                         f"{', '.join(NO_SYMMETRY)} (rig-mesh's default)" if args.symmetry else "off"),
        },
        "skipped": skipped,
        "characters": characters,
        "mean": _means(characters, sources),
    }
    write_result(args.out.resolve(), result)
    for source, row in result["mean"].items():
        print(f"{source:10s} CD-J2J {row['cd_j2j']:.3f} (pred->true {row['pred_to_true']:.3f}, "
              f"true->pred {row['true_to_pred']:.3f})  J2B {row['cd_j2b']:.3f}  B2B {row['cd_b2b']:.3f}  "
              f"on-body J2J {row['on_body']['cd_j2j']:.3f}  joints {row['num_joints']:.0f}  {row['seconds']:.2f} s")


if __name__ == "__main__":
    main()
