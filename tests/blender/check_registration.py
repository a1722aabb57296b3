"""Inside bpy: the extension registers and unregisters twice from the source tree, and installs from its zip.

    python check_registration.py ZIP
"""

from __future__ import annotations

import sys
import time

import addon_env  # noqa: I001 - imports bpy, after which addon_utils exists
import addon_utils
import bpy

EXPECTED_TYPES = ("KEYDIFF3D_PT_image", "KEYDIFF3D_PT_rig_selected", "KEYDIFF3D_OT_rig_selected",
                  "KEYDIFF3D_OT_image_to_rig", "KEYDIFF3D_OT_cancel", "KEYDIFF3D_OT_check_backend",
                  "IMPORT_SCENE_OT_keydiff3d_bundle")


def registered() -> dict:
    return {
        "types": [name for name in EXPECTED_TYPES if hasattr(bpy.types, name)],
        "preferences": any(a.module.endswith("keydiff3d_addon") and a.preferences is not None
                           for a in bpy.context.preferences.addons),
        "scene_settings": hasattr(bpy.types.Scene, "keydiff3d"),
        "progress": hasattr(bpy.types.WindowManager, "keydiff3d_progress"),
        "import_menu": any(getattr(f, "__name__", "") == "menu_import"
                           for f in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()),
        "load_handlers": sum(getattr(h, "__name__", "") == "_cancel_on_file_load" for h in bpy.app.handlers.load_pre),
    }


def main(zip_path: str) -> None:
    cycles = []
    module = None
    for _ in range(2):
        module = addon_env.enable_from_source()
        on = registered()
        addon_utils.disable(module, default_set=True, handle_error=addon_env._raise)
        cycles.append({"enabled": on, "disabled": registered()})
    module = addon_env.enable_from_source()
    addon_env.set_backend_python("/nonexistent/keydiff3d/python")
    outcome, report = addon_env.run_operator(bpy.ops.keydiff3d.check_backend)
    check = {"outcome": outcome, "report": report, "stored": dict(addon_env.addon_module().properties.LAST_CHECK)}
    addon_utils.disable(module, default_set=True, handle_error=addon_env._raise)
    started = time.perf_counter()
    outcome = sorted(bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True))
    installed_module = "bl_ext.user_default.keydiff3d_addon"
    zip_result = {"outcome": outcome, "seconds": time.perf_counter() - started,
                  "enabled": installed_module in bpy.context.preferences.addons, "registered": registered()}
    addon_utils.disable(installed_module, default_set=True, handle_error=addon_env._raise)
    zip_result["after_disable"] = registered()
    addon_env.emit({"cycles": cycles, "zip": zip_result, "check_backend": check})


if __name__ == "__main__":
    main(sys.argv[1])
