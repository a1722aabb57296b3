"""The "KeyDiff3D" sidebar tab of the 3D Viewport: Image → Rigged Mesh and Rig Selected Mesh."""

from __future__ import annotations

import bpy

from . import jobs
from .properties import LAST_CHECK


class _KeyDiff3DPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "KeyDiff3D"


def draw_progress(layout, context) -> bool:
    """The running job's stage, a progress bar and Cancel; True when a job is running."""
    progress = context.window_manager.keydiff3d_progress
    if not progress.running:
        return False
    box = layout.box()
    box.label(text=progress.label, icon="TIME")
    text = f"{progress.stage}: {progress.message}" if progress.message else progress.stage
    if hasattr(box, "progress"):                      # Blender 4.0+
        box.progress(factor=progress.fraction, type="BAR", text=text)
    else:
        box.label(text=f"{text} ({progress.fraction:.0%})")
    box.operator("keydiff3d.cancel", icon="CANCEL")
    return True


class KEYDIFF3D_PT_image(_KeyDiff3DPanel, bpy.types.Panel):
    bl_label = "Image → Rigged Mesh"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keydiff3d
        layout.prop(settings, "image_source", expand=True)
        if settings.image_source == "FILE":
            layout.prop(settings, "image_path", text="")
        else:
            layout.template_ID(settings, "image", open="image.open")
        col = layout.column()
        col.prop(settings, "checkpoint")
        col.prop(settings, "preset")
        col.prop(settings, "seed")
        if LAST_CHECK and "rig" not in (LAST_CHECK.get("commands") or []):
            layout.label(text="The backend has no image job yet", icon="INFO")
        if not draw_progress(layout, context):
            layout.operator("keydiff3d.image_to_rig", icon="PLAY")


class KEYDIFF3D_PT_rig_selected(_KeyDiff3DPanel, bpy.types.Panel):
    bl_label = "Rig Selected Mesh"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keydiff3d
        obj = context.active_object
        layout.label(text=obj.name if obj is not None and obj.type == "MESH" else "Select a mesh", icon="MESH_DATA")
        layout.prop(settings, "keypoint_source")
        if settings.keypoint_source == "MARKER_FILE":
            layout.prop(settings, "marker_file", text="")
        elif settings.keypoint_source == "EMPTIES":
            layout.prop(settings, "marker_collection")
            layout.label(text="Parent an empty to another to force that bone", icon="INFO")
        elif settings.keypoint_source == "NETWORK":
            layout.label(text="Needs a trained keypoint checkpoint", icon="INFO")
        if settings.keypoint_source in ("GEOMETRY", "NETWORK"):
            layout.prop(settings, "mirror_symmetric")
        if not draw_progress(layout, context):
            layout.operator("keydiff3d.rig_selected", icon="ARMATURE_DATA")


CLASSES = (KEYDIFF3D_PT_image, KEYDIFF3D_PT_rig_selected)
