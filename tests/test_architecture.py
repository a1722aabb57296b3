"""The one-way doors of DESIGN.md: the Blender side and the torch side meet only in the protocol and bundle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


DOORS = [
    ("backend", {"bpy", "bmesh", "mathutils", "training"}),
    ("frosting", {"bpy", "bmesh", "mathutils", "training"}),
    ("training", {"bpy", "bmesh", "mathutils"}),
    ("keydiff3d_addon", {"torch", "backend", "frosting", "training"}),
]


@pytest.mark.parametrize("room, forbidden", DOORS, ids=[d[0] for d in DOORS])
def test_room_never_imports_across_a_closed_door(room: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_top_modules(path) & forbidden)
        for path in (REPO / room).rglob("*.py")
    }
    offenders = {path: mods for path, mods in offenders.items() if mods}
    assert offenders == {}, f"{room}/ imports across a one-way door: {offenders}"
