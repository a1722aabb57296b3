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


class FakeLayout:
    """Stands in for UILayout (draw() never runs headless): checks every property and operator a panel names."""

    def __init__(self, log: list) -> None:
        self.log = log

    def prop(self, data, name, **_kwargs):
        if name not in data.bl_rna.properties:
            raise AttributeError(f"{type(data).__name__} has no property {name!r}")
        self.log.append(("prop", name))

    def operator(self, idname, **_kwargs):
        module, name = idname.split(".")
        if not hasattr(getattr(bpy.ops, module), name):
            raise AttributeError(f"no operator {idname}")
        self.log.append(("operator", idname))

    def template_ID(self, data, name, **kwargs):
        self.prop(data, name)

    def label(self, text="", **_kwargs):
        self.log.append(("label", text))

    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(("progress", round(factor, 3), text))

    def box(self):
        return self

    row = column = box

    def separator(self, **_kwargs):
        pass


def draw_everything(module: str) -> dict:
    """Every panel and the preferences drawn in each state they have; returns what was drawn."""
    from types import SimpleNamespace

    log: list = []
    context = bpy.context
    settings = context.scene.keydiff3d
    progress = context.window_manager.keydiff3d_progress
    for running in (False, True):
        progress.running, progress.label, progress.stage, progress.fraction = running, "Rigging", "skinning", 0.5
        for image_source in ("FILE", "BLENDER"):
            for keypoint_source in ("GEOMETRY", "NETWORK", "MARKER_FILE", "EMPTIES"):
                settings.image_source, settings.keypoint_source = image_source, keypoint_source
                for panel in (bpy.types.KEYDIFF3D_PT_image, bpy.types.KEYDIFF3D_PT_rig_selected):
                    panel.draw(SimpleNamespace(layout=FakeLayout(log)), context)
    progress.running = False
    preferences = context.preferences.addons[module].preferences

    class PreferencesWithFakeLayout:
        layout = FakeLayout(log)

        def __getattr__(self, name):
            return getattr(preferences, name)

    type(preferences).draw(PreferencesWithFakeLayout(), context)
    return {"operators": sorted({entry[1] for entry in log if entry[0] == "operator"}),
            "progress_drawn": any(entry[0] == "progress" for entry in log)}


def main(zip_path: str) -> None:
    cycles = []
    module = None
    for _ in range(2):
        module = addon_env.enable_from_source()
        on = registered()
        addon_utils.disable(module, default_set=True, handle_error=addon_env._raise)
        cycles.append({"enabled": on, "disabled": registered()})
    module = addon_env.enable_from_source()
    drawn = draw_everything(module)
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
    addon_env.emit({"cycles": cycles, "zip": zip_result, "check_backend": check, "drawn": drawn})


if __name__ == "__main__":
    main(sys.argv[1])
