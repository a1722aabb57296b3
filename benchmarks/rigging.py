"""Rigging quality on real, artist-rigged characters: skeletons and skin weights against the artist's.

    .venv/bin/python benchmarks/rigging.py [--data ../shared/data/rigs] [--out benchmarks/results/rigging.json]

For every .glb/.gltf in --data (toys under 100 vertices or 3 deforming bones are listed and skipped):
- skeleton: the rig-mesh pipeline (keypoint network when a checkpoint exists; otherwise recorded as
  unavailable), its training-free `geometry` source (curve skeleton) and `snapped` (network keypoints on the
  curve skeleton), k-means-18 markers through the same pipeline, skeletor's skeletonisation, and 18 of the
  artist's own joints through rig-mesh (a reference for what found joints would score), each scored
  with CD-J2J / CD-J2B / CD-B2B and joint precision / recall (backend/metrics/skeleton.py) after centring the
  mesh on its bounding-box centre and scaling its longest side to span [-1, 1];
- skinning on the TRUE skeleton: Eq. 9, improved (heat diffusion), Blender's bone heat through bpy (welded
  by position), rigid nearest bone; influence precision / recall / L1 and deformation error under 20 random
  poses (≤ 45° per bone, seed 0) (backend/metrics/skinning.py).

Deforming bones. glTF has no deform flag: every joint of a skin may carry weight, but game rigs also list
their control bones (a root motion handle, IK pole targets) as joints with no weight. `--deform artist`
(default) lets a method bind only to the bones that carry weight in the file (what Blender's Deform checkbox
said when the artist exported), so skinning is scored alone, and poses only those bones; the same methods with
every joint deforming (and posed) are reported beside it under `skinning_all_joints`. `--deform all` makes
that the main table.
Per character and averaged under `mean` (e.g. mean.skinning.improved.deformation_error_mean).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from machine import machine_info

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rigging_bone_heat import bone_heat_weights  # noqa: E402
from rigging_pictures import comparison_image  # noqa: E402
from rigging_skeletons import (  # noqa: E402
    geometry_skeleton, keypoint_network_skeleton, kmeans_skeleton, skeletor_skeleton, snapped_skeleton,
    true_joint_skeleton,
)

from backend.errors import KeyDiffError  # noqa: E402
from backend.export.gltf_reader import load_skinned_gltf  # noqa: E402
from backend.metrics.skeleton import DEFAULT_TOLERANCE, apply_transform, skeleton_metrics, unit_cube_transform  # noqa: E402
from backend.metrics.skinning import benchmark_poses, skinning_metrics  # noqa: E402
from backend.rig import Rig  # noqa: E402
from backend.skinning_improved import skin_weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "rigs"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "rigging.json"
DEFAULT_PICTURE = ROOT / "docs" / "images" / "rigging_skinning_comparison.png"
PICTURE_CHARACTERS = ("animals_pack_Horse.glb", "easy_enemies_pack_Spider.glb", "platformer_game_pack_Character.glb")
PICTURE_POSE = 0
SKINNING = ("eq9", "improved", "bone_heat", "rigid")
MIN_VERTICES, MIN_BONES = 100, 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--deform", choices=("artist", "all"), default="artist")
    parser.add_argument("--no-bone-heat", action="store_true", help="skip Blender (no bpy in this interpreter)")
    parser.add_argument("--no-skeletons", action="store_true")
    parser.add_argument("--no-speed", action="store_true", help="skip timing eq9 / improved on 200k x 50")
    parser.add_argument("--picture", default=str(DEFAULT_PICTURE), help="PNG to draw; '' to skip")
    args = parser.parse_args()
    files = sorted(p for p in args.data.glob("*") if p.suffix.lower() in (".glb", ".gltf"))
    if not files:
        raise SystemExit(f"no .glb/.gltf files in {args.data}")
    args.out = args.out.resolve()

    characters, skipped, picture_rows = {}, {}, []
    for path in files:
        try:
            asset = load_skinned_gltf(path)
        except KeyDiffError as exc:            # not a rigged character: say so and go on
            skipped[path.name] = f"not usable: [{exc.code}] {exc.message}"
            continue
        if asset.mesh.num_vertices < MIN_VERTICES or int(asset.rig.bone_deforms.sum()) < MIN_BONES:
            skipped[path.name] = f"toy: {asset.mesh.num_vertices} vertices, {int(asset.rig.bone_deforms.sum())} bones"
            continue
        print(f"{path.name}: {asset.mesh.num_vertices} vertices", file=sys.stderr, flush=True)
        characters[path.name] = score_character(asset, args, picture_rows if path.name in PICTURE_CHARACTERS else None)
    result = {
        "benchmark": "rigging quality against artist rigs (skeleton metrics, skinning on the true skeleton)",
        "date": datetime.date.today().isoformat(),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "machine": _machine(),
        "protocol": {
            "normalisation": "mesh centred on its bounding-box centre, longest side spans [-1, 1]",
            "joint_tolerance": DEFAULT_TOLERANCE,
            "bone_sample_spacing": 0.005,
            "poses": "20 poses, seed 0, every deforming bone rotated about its head by a random axis, angle uniform in [0, 45] deg",
            "deform_set": args.deform,
            "bone_heat": "Blender 'With Automatic Weights' via bpy on the mesh welded by position, weights mapped back",
            "improved": "heat diffusion over the welded surface, source = nearest bone by normal-penalised distance, pieces without a bone carried rigidly, top-4 (backend/skinning_improved.py)",
            "eq9": "Gaussian distance, sigma 0.02 x bbox diagonal, top-4 (backend/skinning.py)",
            "rigid": "weight 1 on the nearest bone segment",
        },
        "skipped": skipped,
        "characters": characters,
        "mean": _means(characters),
        "speed": None if args.no_speed else _speed(),
    }
    if args.picture and picture_rows:
        picture = comparison_image(picture_rows, Path(args.picture).resolve())
        result["picture"] = str(picture.relative_to(ROOT)) if picture.is_relative_to(ROOT) else str(picture)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.out)
    print(json.dumps(result["mean"], indent=1))


def score_character(asset, args, picture_rows: list | None = None) -> dict:
    to_unit = unit_cube_transform(asset.mesh.vertices)
    vertices = apply_transform(to_unit, asset.mesh.vertices)
    rig = asset.rig.transformed(to_unit)
    true = asset.weights.to_dense().astype(np.float64)                       # [V, B]
    if args.deform == "artist":
        carries = true.sum(axis=0) > 0
        rig = Rig(rig.joints, rig.parents, rig.names, rig.bone_names, rig.bone_deforms & carries)
    out: dict = {"vertices": asset.mesh.num_vertices, "deforming_bones": int(rig.bone_deforms.sum())}

    if not args.no_skeletons:
        true_joints = apply_transform(to_unit, asset.skeleton_joints)
        skeletons = {}
        runs = (keypoint_network_skeleton(asset.mesh), geometry_skeleton(asset.mesh), snapped_skeleton(asset.mesh),
                kmeans_skeleton(asset.mesh), skeletor_skeleton(asset.mesh),
                true_joint_skeleton(asset.mesh, asset.skeleton_joints))
        for run in runs:
            entry = {"note": run.note, "seconds": round(run.seconds, 3)}
            if run.joints is not None:
                scores = skeleton_metrics(apply_transform(to_unit, run.joints), run.parents, true_joints, asset.skeleton_parents)
                entry.update(scores.to_dict())
            skeletons[run.source] = entry
        out["skeleton"] = skeletons

    poses = benchmark_poses(rig)
    out["skinning"], dense_weights = _score_skinning(vertices, asset.mesh.faces, rig, true, poses, args)
    if args.deform == "artist":     # the same with every joint deforming, for reference
        all_rig = Rig(rig.joints, rig.parents, rig.names, rig.bone_names, asset.rig.bone_deforms)
        out["skinning_all_joints"], _ = _score_skinning(vertices, asset.mesh.faces, all_rig, true, benchmark_poses(all_rig), args)
    if picture_rows is not None:
        picture_rows.append({"name": Path(asset.source).stem, "vertices": vertices, "faces": asset.mesh.faces,
                             "pose": poses[PICTURE_POSE], "weights": dense_weights})
    return out


def _score_skinning(vertices, faces, rig, true, poses, args) -> tuple[dict, dict]:
    skinning, dense_weights = {}, {"artist": true}
    for method in SKINNING:
        start = time.perf_counter()
        if method == "bone_heat":
            if args.no_bone_heat:
                continue
            heat = bone_heat_weights(vertices, faces, rig)
            dense, extra = heat.weights, {"blender_reported_failure": heat.failed, "welded_vertices": heat.welded_vertices}
        else:
            dense, extra = skin_weights(method, vertices, faces, rig).to_dense().astype(np.float64), {}
        seconds = time.perf_counter() - start
        dense_weights[method] = dense
        scores = skinning_metrics(vertices, rig, dense, true, poses=poses)
        skinning[method] = {**scores.to_dict(), "seconds": round(seconds, 3), **extra}
    return skinning, dense_weights


def _speed(num_vertices: int = 200_000, num_bones: int = 50, repeats: int = 3) -> dict:
    """Seconds of eq9 and improved on the skinning benchmark's 200k-vertex, 50-bone mesh (best and median)."""
    from skinning import make_benchmark_mesh

    mesh, bench_rig = make_benchmark_mesh(num_vertices, num_bones)
    out = {"mesh": f"benchmarks/skinning.py make_benchmark_mesh({num_vertices}, {num_bones})", "goal_million_pairs_per_second": 20}
    for method in ("eq9", "improved"):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            skin_weights(method, mesh.vertices, mesh.faces, bench_rig)
            times.append(time.perf_counter() - start)
        out[method] = {"seconds_all": [round(t, 3) for t in times], "seconds_median": round(float(np.median(times)), 3),
                       "million_pairs_per_second_median": round(num_vertices * num_bones / np.median(times) / 1e6, 1)}
    return out


def _means(characters: dict) -> dict:
    """Mean of every numeric metric over the characters that have it (skeleton sources, skinning methods)."""
    mean: dict = {"characters": len(characters)}
    for part in ("skeleton", "skinning", "skinning_all_joints"):
        names = sorted({m for c in characters.values() for m in c.get(part, {})})
        for name in names:
            rows = [c[part][name] for c in characters.values() if name in c.get(part, {})]
            keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            summary = {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys if any(k in r for r in rows)}
            if part.startswith("skinning"):   # the mean hides a single failure; the median and win counts show the typical case
                summary["deformation_error_mean_median"] = float(np.median([r["deformation_error_mean"] for r in rows]))
            summary["characters"] = sum(1 for r in rows if keys and keys[0] in r)
            mean.setdefault(part, {})[name] = summary
    return mean


def _machine() -> dict:
    return machine_info(note="2 cores shared with other jobs")


if __name__ == "__main__":
    main()
