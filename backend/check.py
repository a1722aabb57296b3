"""What this backend can do on this machine: the report behind `keydiff3d check` and the add-on's "Check Backend".

Never downloads anything (HF_HUB_OFFLINE is set before any hub-aware import) and never raises: each part that
cannot be determined is reported as a `<part>_problem` string a user can act on.
"""

from __future__ import annotations

import os
import sys


def backend_report(weights: str | None = None, checkpoint: str | None = None) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from . import __version__, protocol

    report: dict = {
        "version": __version__,
        "protocol": protocol.PROTOCOL_VERSION,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "commands": _commands(),
    }
    try:
        import torch

        report["torch"] = torch.__version__
        report["cuda"] = bool(torch.cuda.is_available())
        report["device"] = torch.cuda.get_device_name(0) if report["cuda"] else "CPU"
    except Exception as exc:  # a broken torch install is exactly what this report is for
        report["torch_problem"] = f"{type(exc).__name__}: {exc}"
    try:
        from .views import sv3d_models as sv3d
        from .weights import locate_weights

        source = locate_weights(weights or None, sv3d.SV3D_COMPONENTS, what="SV3D-p", how_to_get=sv3d.SV3D_HOW_TO_GET,
                                default=sv3d.DEFAULT_SV3D_WEIGHTS, env_var=sv3d.SV3D_WEIGHTS_ENV)
        report["sv3d_weights"] = str(source.folder)
    except Exception as exc:
        report["sv3d_weights_problem"] = str(getattr(exc, "message", exc)).splitlines()[0]
    try:
        from .pipeline.keypoint_source import default_checkpoint

        default = default_checkpoint()
        path = checkpoint or (str(default) if default else "")
        if not path:
            report["checkpoint_problem"] = "no trained keypoint checkpoint ships with this backend yet"
        elif os.path.isfile(os.path.expanduser(path)):
            report["checkpoint"] = path
        else:
            report["checkpoint_problem"] = f"keypoint checkpoint {path!r} not found"
    except Exception as exc:
        report["checkpoint_problem"] = f"{type(exc).__name__}: {exc}"
    return report


def _commands() -> list[str]:
    from .cli import app

    return sorted(command.name for command in app.registered_commands if command.name)
