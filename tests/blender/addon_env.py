"""Helpers for scripts that run inside bpy (child processes of the tests): load the add-on from the working tree
as a real extension, and print one JSON result line the test reads.

Run these scripts with HOME pointing at a throwaway folder (tests/test_addon*.py do), so no user config is touched.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import bpy
import addon_utils

REPO = Path(__file__).resolve().parents[2]
REPO_NAME = "kdtest"
MODULE = f"bl_ext.{REPO_NAME}.keydiff3d_addon"
RESULT_PREFIX = "KEYDIFF3D_RESULT "


def enable_from_source() -> str:
    """Register the working tree's keydiff3d_addon/ through an extension repository (what Blender does on install)."""
    repo_dir = Path(tempfile.mkdtemp(prefix="kd_repo_"))
    (repo_dir / "keydiff3d_addon").symlink_to(REPO / "keydiff3d_addon", target_is_directory=True)
    repos = bpy.context.preferences.extensions.repos
    if not any(r.module == REPO_NAME for r in repos):
        repos.new(name=REPO_NAME, module=REPO_NAME, custom_directory=str(repo_dir), source="USER")
    addon_utils.enable(MODULE, default_set=True, handle_error=_raise)
    return MODULE


def _raise(exc: BaseException) -> None:
    raise exc


def addon_module():
    return sys.modules[MODULE]


def set_backend_python(python: str, source_folder: str = "") -> None:
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.python_path = python
    prefs.source_folder = source_folder


def emit(result: dict) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def fresh_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


def run_operator(operator, **kwargs) -> tuple[list[str], str]:
    """(outcome, error report): in background Blender an operator's ERROR report comes back as RuntimeError."""
    try:
        return sorted(operator(**kwargs)), ""
    except RuntimeError as exc:
        return ["CANCELLED"], str(exc)
