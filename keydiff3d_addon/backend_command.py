"""How the add-on calls the backend: command lines, environment, and the "Check backend" probe. Stdlib only.

The backend runs in its own Python (with torch), chosen in the preferences; the add-on never imports it. Every
command line is built here, so the flags the add-on relies on are in one place.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

SV3D_WEIGHTS_ENV = "KEYDIFF3D_SV3D_WEIGHTS"   # read by backend/views/sv3d_models.py when no --weights is given
DEVICES = ("auto", "cpu", "cuda")
PRESETS = ("cpu_small", "gpu_full")           # frosting/config.py presets a user would pick
KEYPOINT_SOURCES = ("geometry", "network")     # rig-mesh --keypoints values the add-on offers (markers aside)


@dataclass(frozen=True)
class BackendSettings:
    python: str                   # the backend's interpreter
    source_folder: str = ""       # a KeyDiff3D checkout to put on PYTHONPATH (empty: the package is installed)
    device: str = "auto"
    weights: str = ""             # SV3D-p weights folder or hub id (empty: the backend's default)
    checkpoint: str = ""          # keypoint checkpoint (empty: the backend's default, when one ships)
    preset: str = "cpu_small"


class BackendUnavailable(RuntimeError):
    """The configured interpreter is missing or not a file; raised before any process is started."""


def check_interpreter(settings: BackendSettings) -> None:
    python = Path(settings.python).expanduser() if settings.python else None
    if python is None or str(python).strip() == "":
        raise BackendUnavailable("no backend Python is set: Preferences > Add-ons > KeyDiff3D > Backend Python")
    if not python.is_file():
        raise BackendUnavailable(f"the backend Python {str(python)!r} does not exist; fix it in the add-on preferences")
    if not os.access(python, os.X_OK):
        raise BackendUnavailable(f"the backend Python {str(python)!r} is not executable")


def backend_env(settings: BackendSettings) -> dict[str, str]:
    """The child's environment: Blender's own Python variables removed, our settings added."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONNOUSERSITE")}
    env["PYTHONUNBUFFERED"] = "1"
    if settings.source_folder:
        folder = str(Path(settings.source_folder).expanduser())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH", "")) if p)
    if settings.weights:
        env[SV3D_WEIGHTS_ENV] = settings.weights
    return env


def backend_cwd(settings: BackendSettings) -> str | None:
    folder = Path(settings.source_folder).expanduser() if settings.source_folder else None
    return str(folder) if folder is not None and folder.is_dir() else None


def rig_mesh_argv(settings: BackendSettings, mesh: Path, out_dir: Path, markers: Path | None,
                  keypoints: str = "geometry", symmetry: bool = True) -> list[str]:
    """`rig-mesh`: keypoints from a marker file, else from the mesh's curve skeleton (`geometry`) or the keypoint
    network (`network`: the preferences' checkpoint, or the backend's shipped one when that is empty).
    symmetry=False: no mirror-symmetric rig even when the mesh is symmetric (markers never get one)."""
    if keypoints not in KEYPOINT_SOURCES:
        raise ValueError(f"keypoints must be one of {KEYPOINT_SOURCES}, got {keypoints!r}")
    argv = [settings.python, "-m", "backend", "rig-mesh", str(mesh), "-o", str(out_dir), "--json"]
    if markers is not None:
        argv += ["--markers", str(markers)]
        return argv
    argv += ["--keypoints", keypoints]
    if not symmetry:
        argv.append("--no-symmetry")
    if keypoints == "network":
        if settings.checkpoint:
            argv += ["--checkpoint", settings.checkpoint]
        if settings.device in ("cpu", "cuda"):
            argv += ["--device", settings.device]
    return argv


def rig_image_argv(settings: BackendSettings, image: Path, out_dir: Path, *, checkpoint: str, preset: str,
                   seed: int) -> list[str]:
    """`rig`: the image job (SV3D views -> keypoints -> frosting mesh -> rig)."""
    argv = [settings.python, "-m", "backend", "rig", str(image), "-o", str(out_dir), "--json",
            "--preset", preset, "--seed", str(int(seed)), "--device", settings.device]
    checkpoint = checkpoint or settings.checkpoint
    if checkpoint:
        argv += ["--checkpoint", checkpoint]
    if settings.weights:
        argv += ["--weights", settings.weights]
    return argv


def probe_backend(settings: BackendSettings, timeout: float = 120.0) -> dict:
    """Run the probe in the backend's Python; a dict with "problem" when it cannot run at all."""
    try:
        check_interpreter(settings)
    except BackendUnavailable as exc:
        return {"problem": str(exc)}
    argv = [settings.python, "-m", "backend", "check", "--json"]
    if settings.weights:
        argv += ["--weights", settings.weights]
    if settings.checkpoint:
        argv += ["--checkpoint", settings.checkpoint]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=backend_env(settings),
                              cwd=backend_cwd(settings), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"problem": f"the backend Python could not be run: {exc}"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"problem": f"the backend Python exited with status {done.returncode}: {tail}"}


def probe_summary(report: dict) -> list[tuple[str, str]]:
    """(icon, text) lines for the UI."""
    if "problem" in report:
        return [("ERROR", report["problem"])]
    lines = [("CHECKMARK", f"KeyDiff3D backend {report.get('version')} (protocol {report.get('protocol')}), "
                           f"Python {report.get('python')}")]
    if "torch" in report:
        lines.append(("CHECKMARK", f"torch {report['torch']} on {report.get('device')}"))
    else:
        lines.append(("ERROR", f"torch missing: {report.get('torch_problem')}"))
    lines.append(("CHECKMARK", f"SV3D weights: {report['sv3d_weights']}") if "sv3d_weights" in report
                 else ("INFO", f"SV3D weights: {report.get('sv3d_weights_problem')}"))
    lines.append(("CHECKMARK", f"keypoint checkpoint: {report['checkpoint']}") if "checkpoint" in report
                 else ("INFO", f"keypoint checkpoint: {report.get('checkpoint_problem')}"))
    commands = report.get("commands") or []
    if "rig" not in commands:
        lines.append(("INFO", "this backend has no image job ('rig') yet: Image → Rigged Mesh will not run"))
    return lines
