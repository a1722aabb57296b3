"""Inside bpy: "Image → Rigged Mesh" end to end, and the modal (UI) path driven by hand-made events.

    python check_image_job.py CONFIG.json
CONFIG: {"python": real backend interpreter, "shim": executable standing in for the backend's image job,
         "shim_log": where the shim writes the argv it got, "slow_shim": a shim that never finishes}
The backend has no `rig` (image) command yet, so the shim answers it by running the real `rig-mesh` on a fixed mesh;
everything on the add-on side (image hand-over, flags, import into a new collection, pose mode) is real.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import addon_env
import bpy


def job_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("keydiff3d_job_*")}


def counts() -> dict:
    return {n: len(getattr(bpy.data, n)) for n in ("objects", "meshes", "armatures", "collections")}


def reset(python: str, **settings) -> None:
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    addon_env.set_backend_python(python)
    scene_settings = bpy.context.scene.keydiff3d
    for key, value in settings.items():
        setattr(scene_settings, key, value)


def write_png(path: Path) -> None:
    image = bpy.data.images.new("photo", 32, 32)
    image.pixels.foreach_set(np.random.default_rng(0).random(32 * 32 * 4).astype(np.float32))
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    bpy.data.images.remove(image)


def run(python: str, **settings) -> dict:
    reset(python, **settings)
    before, folders = counts(), job_folders()
    outcome, report = addon_env.run_operator(bpy.ops.keydiff3d.image_to_rig)
    result = {"outcome": outcome, "report": report, "folders_left": sorted(job_folders() - folders)}
    if outcome == ["FINISHED"]:
        active = bpy.context.active_object
        collection = active.users_collection[0]
        result.update(collection=collection.name, objects=sorted(o.type for o in collection.objects),
                      active=active.type, mode=active.mode)
    else:
        result["unchanged"] = counts() == before
    return result


class Event(SimpleNamespace):
    pass


def drive_modal(python: str, press_escape_after: float | None, **settings) -> dict:
    """What Blender's event loop would do: TIMER events into the operator's modal(), ESC if asked."""
    reset(python, **settings)
    addon = addon_env.addon_module()
    before, folders = counts(), job_folders()
    operator_class = addon.operators.KEYDIFF3D_OT_image_to_rig
    reports: list = []
    context = bpy.context
    running = addon.operators.start_image_to_rig(context)
    fake_operator = SimpleNamespace(
        _running=running, _timer=context.window_manager.event_timer_add(0.1, window=context.window),
        report=lambda level, text: reports.append((sorted(level), text)),
    )
    fake_operator._end = lambda r: operator_class._end(fake_operator, r)
    stages, running_flags, started = set(), [], time.monotonic()
    outcome, escaped = None, False
    while outcome is None and time.monotonic() - started < 120:
        if press_escape_after is not None and not escaped and time.monotonic() - started > press_escape_after:
            operator_class.modal(fake_operator, context, Event(type="ESC", value="PRESS"))
            escaped = True
        returned = operator_class.modal(fake_operator, context, Event(type="TIMER", value="NOTHING"))
        progress = context.window_manager.keydiff3d_progress
        running_flags.append(progress.running)
        stages.add(progress.stage)
        if returned != {"PASS_THROUGH"}:
            outcome = sorted(returned)
        time.sleep(0.05)
    return {"outcome": outcome, "reports": reports, "stages": sorted(stages - {""}),
            "was_running": any(running_flags), "progress_cleared": not context.window_manager.keydiff3d_progress.running,
            "unchanged": counts() == before, "folders_left": sorted(job_folders() - folders)}


def main(config: dict) -> None:
    addon_env.enable_from_source()
    scratch = Path(tempfile.mkdtemp())
    photo = scratch / "fox_photo.png"
    write_png(photo)
    results = {
        "missing_image": run(config["python"], image_source="FILE", image_path=str(scratch / "nope.png")),
        "real_backend_without_weights": run(config["python"], image_source="FILE", image_path=str(photo)),
        "image_file": run(config["shim"], image_source="FILE", image_path=str(photo), seed=7),
    }
    results["image_file_argv"] = json.loads(Path(config["shim_log"]).read_text())
    reset(config["shim"])
    generated = bpy.data.images.new("painted", 16, 16)
    bpy.context.scene.keydiff3d.image_source = "BLENDER"
    bpy.context.scene.keydiff3d.image = generated
    outcome, report = addon_env.run_operator(bpy.ops.keydiff3d.image_to_rig)
    results["blender_image"] = {"outcome": outcome, "report": report,
                                "argv": json.loads(Path(config["shim_log"]).read_text())}
    results["modal"] = drive_modal(config["shim"], None, image_source="FILE", image_path=str(photo))
    results["modal_escape"] = drive_modal(config["slow_shim"], 1.0, image_source="FILE", image_path=str(photo))
    addon_env.emit(results)


if __name__ == "__main__":
    main(json.loads(Path(sys.argv[1]).read_text()))
