"""Build the installable Blender extension zip of keydiff3d_addon/ (Blender: Edit > Preferences > Get Extensions >
Install from Disk).

    python scripts/build_extension.py [--output-dir dist] [--validate-only]

Uses Blender's own extension tool (`blender_ext.py`, shipped inside the bpy wheel and inside Blender) when it can
be found, so the zip is exactly what `blender --command extension build` makes; without it, the same checks of
the documented manifest fields run here and the zip is written with zipfile.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "keydiff3d_addon"
MANIFEST = SOURCE / "blender_manifest.toml"
REQUIRED = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min", "license")
PERMISSION_KEYS = ("files", "network", "clipboard", "camera", "microphone")
PLATFORMS = ("windows-x64", "windows-arm64", "macos-x64", "macos-arm64", "linux-x64")
DEFAULT_EXCLUDES = ("__pycache__/", "/.git/", "/*.zip")


def blender_ext_tool() -> Path | None:
    """blender_ext.py from an installed bpy wheel (found without importing bpy, which is slow)."""
    spec = importlib.util.find_spec("bpy")
    for root in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(root).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    return None


def manifest_problems(path: Path = MANIFEST) -> list[str]:
    """Our own check of the fields the Blender manual documents (used when Blender's tool is absent, and in tests)."""
    try:
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return [f"{path}: not readable TOML ({exc})"]
    problems = [f"missing required field {key!r}" for key in REQUIRED if key not in manifest]
    text = lambda key: manifest.get(key) if isinstance(manifest.get(key), str) else ""  # noqa: E731
    if text("schema_version") != "1.0.0":
        problems.append(f"schema_version must be '1.0.0', got {manifest.get('schema_version')!r}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", text("id")):
        problems.append(f"id must be a Python identifier in lower case, got {manifest.get('id')!r}")
    if text("id") != path.parent.name:
        problems.append(f"id {manifest.get('id')!r} differs from the package folder {path.parent.name!r}")
    for key in ("version", "blender_version_min"):
        if not re.fullmatch(r"\d+\.\d+\.\d+", text(key)):
            problems.append(f"{key} must be MAJOR.MINOR.PATCH, got {manifest.get(key)!r}")
    tagline = text("tagline")
    if not tagline or len(tagline) > 64 or tagline[-1] in ".!?,;:":
        problems.append(f"tagline must be 1-64 characters without final punctuation, got {tagline!r}")
    if manifest.get("type") not in ("add-on", "theme"):
        problems.append(f"type must be 'add-on' or 'theme', got {manifest.get('type')!r}")
    licenses = manifest.get("license")
    if not isinstance(licenses, list) or not licenses or not all(
            isinstance(x, str) and x.startswith("SPDX:") for x in licenses):
        problems.append(f"license must be a list of 'SPDX:...' identifiers, got {licenses!r}")
    for key, reason in (manifest.get("permissions") or {}).items():
        if key not in PERMISSION_KEYS:
            problems.append(f"unknown permission {key!r}; expected one of {PERMISSION_KEYS}")
        elif not isinstance(reason, str) or not reason or len(reason) > 64 or reason.endswith("."):
            problems.append(f"permission {key!r} needs a reason of 1-64 characters without a final period")
    for platform in manifest.get("platforms", []):
        if platform not in PLATFORMS:
            problems.append(f"unknown platform {platform!r}; expected one of {PLATFORMS}")
    return problems


def build_with_zipfile(output_dir: Path) -> Path:
    """Fallback builder: the package folder's files, minus the manifest's build exclusions, at the zip root."""
    manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    excludes = manifest.get("build", {}).get("paths_exclude_pattern", DEFAULT_EXCLUDES)
    target = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    handle, staging = tempfile.mkstemp(dir=output_dir, prefix=".", suffix=".zip")
    os.close(handle)
    with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(SOURCE.rglob("*")):
            relative = path.relative_to(SOURCE).as_posix()
            if path.is_file() and not _excluded(relative, excludes):
                archive.write(path, relative)
    os.replace(staging, target)
    return target


def _excluded(relative: str, patterns) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        anchored, directory = pattern.startswith("/"), pattern.endswith("/")
        core = pattern.strip("/")
        if directory:
            if any(fnmatch.fnmatch(p, core) for p in (parts[:1] if anchored else parts[:-1])):
                return True
        elif fnmatch.fnmatch(relative if anchored else parts[-1], core):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist")
    parser.add_argument("--validate-only", action="store_true")
    args = parser.parse_args(argv)
    problems = manifest_problems()
    if problems:
        print("blender_manifest.toml: " + "; ".join(problems), file=sys.stderr)
        return 2
    tool = blender_ext_tool()
    if tool is not None:
        done = subprocess.run([sys.executable, str(tool), "validate", str(SOURCE)], capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            return 2
    if args.validate_only:
        print("manifest valid" + (" (Blender's validator and ours)" if tool else " (our checks; no Blender tool found)"))
        return 0
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if tool is None:
        print(f"wrote {build_with_zipfile(args.output_dir)}")
        return 0
    done = subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(SOURCE),
                           "--output-dir", str(args.output_dir)], capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout + done.stderr, file=sys.stderr)
        return 2
    print(done.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
