"""Operators: Image → Rigged Mesh, Rig Selected Mesh, Cancel, Check Backend, Import KeyDiff3D Bundle.

The two backend operators share `_BackendOperator`: `start()` prepares inputs and launches the process; in the UI
a modal timer calls `RunningJob.poll_once`, in background Blender the same function runs in a loop. The scene is
touched only when the result arrives, in one go, so a failure or a cancel leaves nothing behind, and the whole
import is one undo step.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from . import jobs
from .backend_command import (BackendUnavailable, backend_cwd, backend_env, check_interpreter, probe_backend,
                              rig_image_argv, rig_mesh_argv)
from .backend_job import BackendJob
from .bundle import BundleError, read_bundle
from .properties import LAST_CHECK, backend_settings
from .rig_inputs import (InputError, export_mesh_world, image_for_backend, write_markers_from_empties,
                         write_markers_from_file)
from .scene_build import bind_bundle_to_object, import_bundle

BUNDLE_SUBDIR = "bundle"


def start_job(argv_for: callable, settings, *, label: str, prepare, on_result) -> jobs.RunningJob:
    """Make the job folder, let `prepare(workdir)` write the inputs, launch; the folder goes on any failure."""
    if jobs.ACTIVE is not None:
        raise InputError(f"a KeyDiff3D job is already running ({jobs.ACTIVE.label}); cancel it first")
    try:
        check_interpreter(settings)
    except BackendUnavailable as exc:
        raise InputError(str(exc)) from exc
    workdir = Path(tempfile.mkdtemp(prefix="keydiff3d_job_"))
    try:
        inputs = prepare(workdir)
        bundle = workdir / BUNDLE_SUBDIR
        job = BackendJob(argv_for(inputs, bundle), env=backend_env(settings), cwd=backend_cwd(settings))
        running = jobs.RunningJob(job, workdir, bundle, on_result, label)
        job.start()
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    jobs.ACTIVE = running
    return running


def start_rig_selected(context, obj=None) -> jobs.RunningJob:
    """Rig Selected Mesh, started: export, markers, backend launched. Tests drive `poll_once` themselves."""
    obj = obj or context.active_object
    if obj is None or obj.type != "MESH":
        raise InputError("select a mesh object to rig")
    if obj.mode != "OBJECT":
        raise InputError(f"{obj.name!r} is in {obj.mode.title()} mode; switch to Object mode first")
    scene_settings = context.scene.keydiff3d
    settings = backend_settings(context)
    object_name = obj.name

    def prepare(workdir: Path) -> tuple[Path, Path | None]:
        exported = export_mesh_world(context, obj, workdir / "mesh.ply")
        markers = workdir / "markers.json"
        if scene_settings.keypoint_source == "EMPTIES":
            write_markers_from_empties(obj, scene_settings.marker_collection, markers)
        elif scene_settings.keypoint_source == "MARKER_FILE":
            write_markers_from_file(obj, scene_settings.marker_file, markers)
        else:
            markers = None
        return exported.path, markers

    def on_result(ctx, bundle_path: Path) -> str:
        target = bpy.data.objects.get(object_name)
        if target is None:
            raise ValueError(f"object {object_name!r} was deleted while the backend ran")
        bundle = read_bundle(bundle_path, with_mesh=False)
        rig = bind_bundle_to_object(ctx, bundle, target)
        return f"KeyDiff3D: rigged {object_name!r} with {len(rig.bone_names)} bones ({rig.armature.name})"

    keypoints = "network" if scene_settings.keypoint_source == "NETWORK" else "geometry"
    symmetry = bool(scene_settings.mirror_symmetric)
    return start_job(lambda inputs, out: rig_mesh_argv(settings, inputs[0], out, inputs[1], keypoints, symmetry),
                     settings, label=f"Rigging {object_name}", prepare=prepare, on_result=on_result)


def start_image_to_rig(context) -> jobs.RunningJob:
    scene_settings = context.scene.keydiff3d
    settings = backend_settings(context)
    preset = settings.preset if scene_settings.preset == "PREFS" else scene_settings.preset
    checkpoint = bpy.path.abspath(scene_settings.checkpoint) if scene_settings.checkpoint else ""

    def prepare(workdir: Path) -> Path:
        return image_for_backend(context, scene_settings.image_source, scene_settings.image_path,
                                 scene_settings.image, workdir)

    def on_result(ctx, bundle_path: Path) -> str:
        bundle = read_bundle(bundle_path)
        name = Path(scene_settings.image_path).stem if scene_settings.image_source == "FILE" else (
            scene_settings.image.name if scene_settings.image else "KeyDiff3D")
        collection, mesh_obj, rig = import_bundle(ctx, bundle, name or "KeyDiff3D")
        return f"KeyDiff3D: {mesh_obj.name!r} rigged with {len(rig.bone_names)} bones in collection {collection.name!r}"

    return start_job(
        lambda image, out: rig_image_argv(settings, image, out, checkpoint=checkpoint, preset=preset,
                                          seed=scene_settings.seed),
        settings, label="Image → Rigged Mesh", prepare=prepare, on_result=on_result,
    )


class _BackendOperator:
    bl_options = {"REGISTER", "UNDO"}
    _timer = None
    _running: jobs.RunningJob | None = None

    def start(self, context) -> jobs.RunningJob:
        raise NotImplementedError

    def execute(self, context):
        try:
            running = self.start(context)
        except Exception as exc:  # bad selection, unreadable marker file, disk full: one report, no traceback
            self.report({"ERROR"}, f"KeyDiff3D: {exc}")
            return {"CANCELLED"}
        self._running = running
        if bpy.app.background or context.window is None:
            while (interval := running.poll_once(context)) is not None:
                time.sleep(interval)
            return self._end(running)
        wm = context.window_manager
        self._timer = wm.event_timer_add(jobs.POLL_INTERVAL, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        running = self._running
        if event.type == "ESC" and event.value == "PRESS":
            running.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if running.poll_once(context) is not None:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._end(running)

    def _end(self, running: jobs.RunningJob):
        level, text = running.report or ("ERROR", "KeyDiff3D: the job ended without a report")
        self.report({level}, text)
        return {"FINISHED"} if running.succeeded else {"CANCELLED"}


class KEYDIFF3D_OT_rig_selected(_BackendOperator, bpy.types.Operator):
    """Rig the selected mesh: skeleton and skin weights from the backend, bound to this object"""

    bl_idname = "keydiff3d.rig_selected"
    bl_label = "Rig Selected Mesh"

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type == "MESH" and jobs.ACTIVE is None

    def start(self, context):
        return start_rig_selected(context)


class KEYDIFF3D_OT_image_to_rig(_BackendOperator, bpy.types.Operator):
    """Reconstruct a rigged, posable mesh from one image (runs the backend's image job)"""

    bl_idname = "keydiff3d.image_to_rig"
    bl_label = "Image → Rigged Mesh"

    @classmethod
    def poll(cls, context):
        return jobs.ACTIVE is None

    def start(self, context):
        return start_image_to_rig(context)


class KEYDIFF3D_OT_cancel(bpy.types.Operator):
    """Stop the running KeyDiff3D backend job (nothing is added to the scene)"""

    bl_idname = "keydiff3d.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return jobs.ACTIVE is not None

    def execute(self, context):
        jobs.cancel_active()
        return {"FINISHED"}


class KEYDIFF3D_OT_check_backend(bpy.types.Operator):
    """Run the backend's Python and report its version, device, and whether weights and checkpoint are found"""

    bl_idname = "keydiff3d.check_backend"
    bl_label = "Check Backend"

    def execute(self, context):
        report = probe_backend(backend_settings(context))
        LAST_CHECK.clear()
        LAST_CHECK.update(report)
        if "problem" in report:
            self.report({"ERROR"}, f"KeyDiff3D: {report['problem']}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"KeyDiff3D backend {report.get('version')} on {report.get('device', 'unknown device')}")
        return {"FINISHED"}


class KEYDIFF3D_OT_import_bundle(bpy.types.Operator, ImportHelper):
    """Import a KeyDiff3D result bundle (its rig.json): mesh, Armature and skin weights, no backend needed"""

    bl_idname = "import_scene.keydiff3d_bundle"
    bl_label = "Import KeyDiff3D Bundle"
    bl_options = {"REGISTER", "UNDO", "PRESET"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="rig.json;*.json", options={"HIDDEN"})

    def execute(self, context):
        path = Path(self.filepath)
        folder = path if path.is_dir() else path.parent
        try:
            bundle = read_bundle(folder)
            collection, mesh_obj, rig = import_bundle(context, bundle, folder.name or "KeyDiff3D")
        except (BundleError, OSError, RuntimeError, ValueError) as exc:
            self.report({"ERROR"}, f"KeyDiff3D: cannot import {folder}: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"KeyDiff3D: imported {mesh_obj.name!r} with {len(rig.bone_names)} bones")
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(KEYDIFF3D_OT_import_bundle.bl_idname, text="KeyDiff3D Bundle (rig.json)")


CLASSES = (KEYDIFF3D_OT_rig_selected, KEYDIFF3D_OT_image_to_rig, KEYDIFF3D_OT_cancel, KEYDIFF3D_OT_check_backend,
           KEYDIFF3D_OT_import_bundle)
