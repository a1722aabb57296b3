"""The `keydiff3d` command (also `python -m backend`).

Every command runs through `_run_job`, which turns failures into one line with a stable code and a non-zero exit
status (2 for bad input, 1 for bugs, 130 for a cancel), and, with --json, speaks the add-on protocol on stdout.
"""

from __future__ import annotations

import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, Optional

import typer

from . import __version__, protocol
from .errors import KeyDiffError
from .progress import ConsoleProgress, JsonLinesProgress, Progress

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"

app = typer.Typer(
    name="keydiff3d",
    help="One image or one mesh in, a rigged, posable 3D object out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JSON_OPTION = typer.Option(False, "--json", help="Speak the JSON-lines protocol on stdout (used by the Blender add-on).")
DEBUG_OPTION = typer.Option(False, "--debug", help="Print the full traceback of unexpected errors.")


def _raise_cancelled(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise KeyDiffError("cancelled", "stopped by a termination signal")


def _run_job(job: Callable[[Progress], Path], *, json_lines: bool, debug: bool) -> None:
    """Run one job: progress, a result line, or one error line; temporary folders are removed by the job."""
    signal.signal(signal.SIGTERM, _raise_cancelled)
    if json_lines:
        protocol.send("hello", protocol=protocol.PROTOCOL_VERSION, version=__version__)
    progress: Progress = JsonLinesProgress() if json_lines else ConsoleProgress()
    try:
        bundle = job(progress)
    except KeyDiffError as exc:
        _fail(exc.code, exc.message, json_lines, exit_code=130 if exc.code == "cancelled" else 2)
    except KeyboardInterrupt:
        _fail("cancelled", "interrupted", json_lines, exit_code=130)
    except MemoryError:
        _fail("internal", "ran out of memory; try a smaller mesh or a lighter preset", json_lines, exit_code=1)
    except Exception as exc:  # a bug: still one clear line, traceback only on request
        if debug:
            traceback.print_exc()
        _fail("internal", f"{type(exc).__name__}: {exc} (run again with --debug for the traceback)", json_lines, 1)
    else:
        if json_lines:
            protocol.send("result", bundle=str(bundle))
        else:
            print(f"wrote {bundle}", file=sys.stderr)


def _fail(code: str, message: str, json_lines: bool, exit_code: int) -> None:
    first_line = message.splitlines()[0] if message else code
    if json_lines:
        protocol.send("error", code=code, message=first_line)
    print(f"keydiff3d: error [{code}]: {first_line}", file=sys.stderr)
    raise typer.Exit(exit_code)


@app.command("rig-mesh")
def rig_mesh_command(
    mesh: Path = typer.Argument(..., help="Mesh to rig: .glb .gltf .obj .ply .stl (parts are joined)."),
    out: Path = typer.Option(..., "-o", "--out", help="Bundle folder to write (replaced if it holds an earlier bundle)."),
    markers: Optional[Path] = typer.Option(None, "--markers", help="Marker JSON: keypoints [+ edges] in mesh coordinates "
                                           "(instead of --keypoints)."),
    keypoints: Optional[str] = typer.Option(None, "--keypoints", help="Without --markers: geometry (default: the mesh's "
                                            "curve skeleton, no training, any creature), network (the keypoint "
                                            "checkpoint reads orbit renders), or snapped (network keypoints moved onto "
                                            "the curve skeleton)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Keypoint network checkpoint (default: the "
                                              "shipped CPU one, checkpoints/keypoints_cnn_humanoid_cpu.pt)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda, for the keypoint network."),
    floor_root: Optional[bool] = typer.Option(None, "--floor-root/--no-floor-root", help="Add a non-deforming root bone "
                                              "on the floor under the body, as game engines expect for root motion "
                                              "(default: on, except with --markers)."),
    symmetry: bool = typer.Option(True, "--symmetry/--no-symmetry", help="A mirror-symmetric mesh gets a mirror-"
                                  "symmetric rig with Blender's .L/.R names (X-Axis Mirror, Paste Pose Flipped); "
                                  "never with --markers."),
    skinning: str = typer.Option("improved", help="Skin weights: improved (heat over the surface, default), eq9 (the "
                                 "paper's Gaussian distance), rigid (nearest bone only)."),
    sigma_scale: float = typer.Option(0.02, help="eq9/rigid: Gaussian width as a fraction of the bounding-box diagonal."),
    sharpness: float = typer.Option(2.0, help="eq9/rigid: falloff exponent (2 = Gaussian)."),
    top_k: int = typer.Option(4, help="Bone influences per vertex (game engines take 4)."),
    json_lines: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    """Rig an existing mesh: skeleton from keypoints, skin weights on its own vertices, a bundle out."""
    from .pipeline.assemble import SkinningOptions
    from .pipeline.rig_mesh import RigMeshOptions, rig_mesh

    def job(progress: Progress) -> Path:
        options = RigMeshOptions(
            markers=str(markers) if markers else None, keypoints=keypoints,
            checkpoint=str(checkpoint) if checkpoint else None, device=device, floor_root=floor_root,
            symmetry=symmetry, skinning=SkinningOptions(skinning, sigma_scale, sharpness, top_k),
        )
        return rig_mesh(mesh, out, options, progress)

    _run_job(job, json_lines=json_lines, debug=debug)


@app.command("rig")
def rig_command(
    image: Path = typer.Argument(..., help="Photo of one object: RGBA cut-out, or any image when rembg is installed."),
    out: Path = typer.Option(..., "-o", "--out", help="Bundle folder to write (replaced if it holds an earlier bundle)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="SV3D-p weights folder or hub id (see docs/sv3d.md)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Keypoint network checkpoint (default: shipped)."),
    preset: str = typer.Option("cpu_small", "--preset", help="Frosting quality: cpu_small or gpu_full."),
    steps: int = typer.Option(50, "--steps", help="SV3D denoising steps."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the sampler."),
    device: str = typer.Option("auto", "--device", help="auto (cuda when available), cpu or cuda."),
    keypoints: str = typer.Option("network", "--keypoints", help="network (the paper: the keypoint network reads the "
                                  "SV3D views) or geometry (joints on the reconstructed mesh's curve skeleton)."),
    floor_root: bool = typer.Option(True, "--floor-root/--no-floor-root", help="Add a non-deforming root bone on "
                                    "the floor under the object (root motion in game engines)."),
    symmetry: bool = typer.Option(True, "--symmetry/--no-symmetry", help="A mirror-symmetric reconstruction gets a "
                                  "mirror-symmetric rig with .L/.R names."),
    skinning: str = typer.Option("improved", help="Skin weights: improved, eq9 or rigid."),
    json_lines: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    """Rig a photo: SV3D views, keypoints, a Gaussian Frosting mesh, skeleton and weights, a bundle out."""

    def job(progress: Progress) -> Path:
        from .pipeline.assemble import SkinningOptions
        from .pipeline.rig_image import RigImageOptions, rig_image

        options = RigImageOptions(weights=weights, checkpoint=str(checkpoint) if checkpoint else None, preset=preset,
                                  steps=steps, seed=seed, device=device, keypoints=keypoints,
                                  floor_root=floor_root, symmetry=symmetry, skinning=SkinningOptions(skinning))
        return rig_image(image, out, options, progress)

    _run_job(job, json_lines=json_lines, debug=debug)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("out/demo"), "-o", "--out", help="Bundle folder to write."),
    example: str = typer.Option("humanoid", help="Which built-in example body to rig: humanoid or quadruped."),
    keypoints: str = typer.Option("geometry", help="geometry (the mesh's curve skeleton, no training), network (the "
                                  "shipped keypoint checkpoint reads orbit renders), snapped, or markers (the "
                                  "example's true joints, as a user placing markers would)."),
    json_lines: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    """Rig a built-in example body (no files or weights needed) and write its bundle."""
    from .pipeline.rig_mesh import KEYPOINT_SOURCES, RigMeshOptions, rig_mesh

    def job(progress: Progress) -> Path:
        folder = EXAMPLES / example
        if not (folder / "mesh.glb").is_file():
            known = sorted(p.name for p in EXAMPLES.iterdir() if (p / "mesh.glb").is_file())
            raise KeyDiffError("invalid_argument", f"no example {example!r}; the built-in examples are {known}")
        if keypoints not in ("markers", *KEYPOINT_SOURCES):
            raise KeyDiffError("invalid_argument",
                               f"--keypoints must be markers or one of {KEYPOINT_SOURCES}, got {keypoints!r}")
        if keypoints == "markers":
            return rig_mesh(folder / "mesh.glb", out, RigMeshOptions(markers=str(folder / "joints.json")), progress)
        return rig_mesh(folder / "mesh.glb", out, RigMeshOptions(keypoints=keypoints), progress)

    _run_job(job, json_lines=json_lines, debug=debug)


@app.command("generate")
def generate_command(
    image: Path = typer.Argument(..., help="Photo of one object: RGBA cut-out, or any image when rembg is installed."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for views/, features.safetensors and generate.json."),
    weights: Optional[str] = typer.Option(None, "--weights", help="SV3D-p weights: a diffusers-layout folder or hub id "
                                          "(default $KEYDIFF3D_SV3D_WEIGHTS; see docs/sv3d.md)."),
    steps: int = typer.Option(50, "--steps", help="Denoising steps."),
    elevation: float = typer.Option(10.0, "--elevation", help="Camera elevation of the orbit in degrees."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the sampler."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
    json_lines: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    """Turn one photo into the 21 SV3D-p orbit views and the UNet decoder features of the keypoint network."""

    def job(progress: Progress) -> Path:
        from .views.sv3d import run_generate   # diffusers takes seconds to import: only for this command

        return run_generate(image, out, weights=weights, steps=steps, elevation=elevation, seed=seed,
                            device=device, progress=progress).out_dir

    _run_job(job, json_lines=json_lines, debug=debug)


@app.command("reconstruct")
def reconstruct_command(
    views_dir: Path = typer.Argument(..., help="A views folder (from `generate`, or a bundle's views/)."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for mesh.glb/.ply, gaussians.ply and binding.npz."),
    preset: str = typer.Option("cpu_small", "--preset", help="cpu_small (CPU, minutes) or gpu_full (CUDA)."),
    device: str = typer.Option("auto", "--device", help="auto (cuda when available), cpu or cuda."),
    json_lines: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    """Gaussian Frosting: a mesh and Gaussians bound to it from the 21 orbit views."""

    def job(progress: Progress) -> Path:
        import torch
        from frosting.pipeline import run_reconstruct

        chosen = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        return run_reconstruct(views_dir, out, preset=preset, device=chosen, progress=progress)

    _run_job(job, json_lines=json_lines, debug=debug)


@app.command("check")
def check_command(
    weights: Optional[str] = typer.Option(None, "--weights", help="SV3D weights folder or hub id to look for."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Keypoint checkpoint to look for."),
    json_report: bool = typer.Option(False, "--json", help="Print the report as one JSON object (the add-on reads it)."),
) -> None:
    """Report version, device, and whether SV3D weights and the keypoint checkpoint are found (offline)."""
    import json

    from .check import backend_report

    report = backend_report(weights, checkpoint)
    if json_report:
        print(json.dumps(report, sort_keys=True))
        return
    for key, value in report.items():
        print(f"{key:>22}: {value}")


@app.command("version")
def version_command() -> None:
    """Print the package and protocol versions."""
    print(f"keydiff3d {__version__} (protocol {protocol.PROTOCOL_VERSION})")


def main() -> None:
    app()
