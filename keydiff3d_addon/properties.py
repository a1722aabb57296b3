"""Settings: add-on preferences (backend, weights, device, preset), per-scene panel options, live job progress."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

from .backend_command import BackendSettings, probe_summary

ADDON_PACKAGE = __package__           # "bl_ext.<repo>.keydiff3d_addon" when installed as an extension
PRESET_ITEMS = [
    ("cpu_small", "CPU (small)", "Frosting at CPU scale: minutes, coarser mesh"),
    ("gpu_full", "GPU (full)", "The paper's Frosting settings: needs a CUDA GPU"),
]
LAST_CHECK: dict = {}                 # the latest "Check backend" report, shown in preferences and panel


def _default_python() -> str:
    """A backend venv beside a source checkout holding this add-on, if there is one; else nothing."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / ".venv" / "bin" / "python", here.parent / ".venv" / "Scripts" / "python.exe"):
        if candidate.is_file():
            return str(candidate)
    return ""


class KEYDIFF3D_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    python_path: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default=_default_python(),
        description="Python interpreter of the KeyDiff3D backend environment (the one with torch installed)",
    )
    source_folder: StringProperty(
        name="Backend Source", subtype="DIR_PATH", default="",
        description="Optional KeyDiff3D checkout put on PYTHONPATH (leave empty when the backend is pip-installed)",
    )
    weights: StringProperty(
        name="SV3D Weights", default="",
        description="SV3D-p weights: a local folder in diffusers layout or a Hugging Face hub id "
                    "(empty: the backend's default). Never downloaded by the add-on",
    )
    checkpoint: StringProperty(
        name="Keypoint Checkpoint", subtype="FILE_PATH", default="",
        description="Trained keypoint network checkpoint (empty: the backend's default, once one ships)",
    )
    device: EnumProperty(
        name="Device", default="auto",
        items=[("auto", "Auto", "CUDA when available, else CPU"), ("cpu", "CPU", ""), ("cuda", "CUDA", "")],
    )
    preset: EnumProperty(name="Quality Preset", items=PRESET_ITEMS, default="cpu_small")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "python_path")
        col.prop(self, "source_folder")
        col.prop(self, "weights")
        col.prop(self, "checkpoint")
        row = col.row()
        row.prop(self, "device")
        row.prop(self, "preset")
        layout.operator("keydiff3d.check_backend", icon="CHECKMARK")
        draw_check_report(layout)


def draw_check_report(layout) -> None:
    if not LAST_CHECK:
        return
    box = layout.box()
    for icon, text in probe_summary(LAST_CHECK):
        for i, part in enumerate(textwrap.wrap(text, 90) or [""]):   # labels do not wrap by themselves
            box.label(text=part, icon=icon if i == 0 else "BLANK1")


def addon_preferences(context=None) -> KEYDIFF3D_AddonPreferences | None:
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def backend_settings(context=None) -> BackendSettings:
    prefs = addon_preferences(context)
    if prefs is None:
        return BackendSettings(python=_default_python() or sys.executable)
    return BackendSettings(
        python=bpy.path.abspath(prefs.python_path) if prefs.python_path else "",
        source_folder=bpy.path.abspath(prefs.source_folder) if prefs.source_folder else "",
        device=prefs.device, weights=prefs.weights, checkpoint=prefs.checkpoint, preset=prefs.preset,
    )


class KEYDIFF3D_SceneSettings(bpy.types.PropertyGroup):
    # Image -> Rigged Mesh
    image_source: EnumProperty(
        name="Image", items=[("FILE", "File", "An image file on disk"), ("BLENDER", "Blender Image", "A loaded image")],
        default="FILE",
    )
    image_path: StringProperty(name="Image File", subtype="FILE_PATH", default="")
    image: PointerProperty(name="Blender Image", type=bpy.types.Image)
    checkpoint: StringProperty(
        name="Checkpoint", subtype="FILE_PATH", default="",
        description="Keypoint checkpoint for this run (empty: the one in the preferences)",
    )
    preset: EnumProperty(name="Frosting", items=[("PREFS", "From Preferences", "")] + PRESET_ITEMS, default="PREFS")
    seed: IntProperty(name="Seed", default=0, min=0)
    # Rig Selected Mesh
    keypoint_source: EnumProperty(
        name="Keypoints",
        items=[
            ("GEOMETRY", "Mesh Shape", "Joints on the mesh's curve skeleton: ends, forks and bends (no training, "
             "any creature)"),
            ("NETWORK", "Network", "Keypoints from the trained keypoint network (needs a checkpoint in the backend)"),
            ("MARKER_FILE", "Marker File", "A JSON file of keypoints in the object's coordinates"),
            ("EMPTIES", "Marker Empties", "Empties placed on the mesh: its child empties, or a chosen collection"),
        ],
        default="GEOMETRY",
    )
    mirror_symmetric: BoolProperty(
        name="Mirror Symmetric",
        description="A left/right symmetric mesh gets a mirror-symmetric rig with .L/.R bone names, so X-Axis "
        "Mirror and Paste Pose Flipped work (not with markers)",
        default=True,
    )
    marker_file: StringProperty(name="Marker File", subtype="FILE_PATH", default="")
    marker_collection: PointerProperty(
        name="Marker Collection", type=bpy.types.Collection,
        description="Collection holding the marker empties (empty: the mesh's child empties)",
    )


class KEYDIFF3D_Progress(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)
    label: StringProperty(default="")
    stage: StringProperty(default="")
    fraction: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    message: StringProperty(default="")


CLASSES = (KEYDIFF3D_AddonPreferences, KEYDIFF3D_SceneSettings, KEYDIFF3D_Progress)


def register_properties() -> None:
    bpy.types.Scene.keydiff3d = PointerProperty(type=KEYDIFF3D_SceneSettings)
    bpy.types.WindowManager.keydiff3d_progress = PointerProperty(type=KEYDIFF3D_Progress)


def unregister_properties() -> None:
    del bpy.types.WindowManager.keydiff3d_progress
    del bpy.types.Scene.keydiff3d
