"""KeyDiff3D backend: the torch side. Never imports bpy (see ../shared/DESIGN.md, "Rooms and doors")."""

__version__ = "0.1.0"
