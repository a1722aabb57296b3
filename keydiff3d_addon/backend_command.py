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


def rig_mesh_argv(settings: BackendSettings, mesh: Path, out_dir: Path, markers: Path | None) -> list[str]:
    """`rig-mesh`: keypoints from a marker file today; without one the backend uses its keypoint network."""
    argv = [settings.python, "-m", "backend", "rig-mesh", str(mesh), "-o", str(out_dir), "--json"]
    if markers is not None:
        argv += ["--markers", str(markers)]
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


# Runs inside the backend's Python: reports what a user needs to know, never downloads (HF_HUB_OFFLINE=1).
PROBE_CODE = r"""
import json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
weights_spec, checkpoint_spec = sys.argv[1], sys.argv[2]
report = {"python": sys.version.split()[0], "executable": sys.executable}
try:
    import backend
    from backend import protocol
    from backend.cli import app
    report["version"] = backend.__version__
    report["protocol"] = protocol.PROTOCOL_VERSION
    report["commands"] = sorted((c.name or c.callback.__name__.replace("_command", "")).replace("_", "-")
                                for c in app.registered_commands)
except Exception as exc:
    report["problem"] = f"the KeyDiff3D backend cannot be imported: {type(exc).__name__}: {exc}"
try:
    import torch
    report["torch"] = torch.__version__
    report["cuda"] = bool(torch.cuda.is_available())
    report["device"] = torch.cuda.get_device_name(0) if report["cuda"] else "CPU"
except Exception as exc:
    report["torch_problem"] = f"{type(exc).__name__}: {exc}"
try:
    from backend.views import sv3d_models as m
    from backend.weights import locate_weights
    source = locate_weights(weights_spec or None, m.SV3D_COMPONENTS, what="SV3D-p", how_to_get=m.SV3D_HOW_TO_GET,
                            default=m.DEFAULT_SV3D_WEIGHTS, env_var=m.SV3D_WEIGHTS_ENV)
    report["sv3d_weights"] = str(source.folder)
except Exception as exc:
    report["sv3d_weights_problem"] = str(getattr(exc, "message", exc)).splitlines()[0]
try:
    from backend.keypoints import inference
    default = getattr(inference, "DEFAULT_CHECKPOINT", None)
    checkpoint = checkpoint_spec or (str(default) if default else "")
    if not checkpoint:
        report["checkpoint_problem"] = "no trained keypoint checkpoint ships with this backend yet"
    elif os.path.isfile(os.path.expanduser(checkpoint)):
        report["checkpoint"] = checkpoint
    else:
        report["checkpoint_problem"] = f"keypoint checkpoint {checkpoint!r} not found"
except Exception as exc:
    report["checkpoint_problem"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(report))
"""


def probe_backend(settings: BackendSettings, timeout: float = 120.0) -> dict:
    """Run the probe in the backend's Python; a dict with "problem" when it cannot run at all."""
    try:
        check_interpreter(settings)
    except BackendUnavailable as exc:
        return {"problem": str(exc)}
    argv = [settings.python, "-c", PROBE_CODE, settings.weights, settings.checkpoint]
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
