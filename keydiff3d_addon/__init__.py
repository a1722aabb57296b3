"""KeyDiff3D for Blender: one image or one mesh in, an Armature with skin weights out.

The heavy work (torch) runs in a separate backend process; this package is bpy + numpy + the standard library.
bpy-dependent modules are imported in `register()` so the stdlib parts (protocol reader, backend job, bundle
reader) can be imported and tested without Blender.
"""

from __future__ import annotations

_registered: list = []


def register() -> None:
    import bpy

    from . import operators, panels, properties

    for cls in (*properties.CLASSES, *operators.CLASSES, *panels.CLASSES):
        bpy.utils.register_class(cls)
        _registered.append(cls)
    properties.register_properties()
    bpy.types.TOPBAR_MT_file_import.append(operators.menu_import)
    bpy.app.handlers.load_pre.append(bpy.app.handlers.persistent(_cancel_on_file_load))


def unregister() -> None:
    import bpy

    from . import jobs, operators, properties

    jobs.abandon_active()
    if _cancel_on_file_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_cancel_on_file_load)
    bpy.types.TOPBAR_MT_file_import.remove(operators.menu_import)
    properties.unregister_properties()
    while _registered:
        bpy.utils.unregister_class(_registered.pop())


def _cancel_on_file_load(*_args) -> None:
    """A job must not outlive the file it was started from: its result would land in another scene."""
    from . import jobs

    jobs.abandon_active()
