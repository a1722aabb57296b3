"""Run the Khronos glTF validator (npm `gltf-validator`, a JS library) on a file we wrote.

The validator only exists as JS, so a tiny node script kept next to this module (`validate_gltf.mjs`) calls
its `validateBytes` and prints the JSON report; this module finds node and the package, runs it, and turns
the report into a dataclass. Missing node or package is a `missing_dependency` error so tests can skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KeyDiffError

_SCRIPT = Path(__file__).with_name("validate_gltf.mjs")
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ValidationMessage:
    code: str
    message: str
    severity: int            # 0 error, 1 warning, 2 info, 3 hint (the validator's numbering)
    pointer: str = ""


@dataclass(frozen=True)
class ValidationReport:
    num_errors: int
    num_warnings: int
    num_infos: int
    messages: tuple[ValidationMessage, ...] = field(default=())
    info: dict = field(default_factory=dict)   # the validator's asset summary (maxInfluences, counts, ...)

    @property
    def errors(self) -> tuple[ValidationMessage, ...]:
        return tuple(m for m in self.messages if m.severity == 0)

    def summary(self) -> str:
        """One line per error/warning, for assertion messages and logs."""
        lines = [f"{m.code} {m.pointer}: {m.message}" for m in self.messages if m.severity <= 1]
        return f"{self.num_errors} errors, {self.num_warnings} warnings" + "".join("\n  " + s for s in lines)


def find_node_modules() -> Path | None:
    """The node_modules folder that holds gltf-validator: $KEYDIFF3D_NODE_MODULES, else the repo's own."""
    for candidate in (os.environ.get("KEYDIFF3D_NODE_MODULES"), _REPO_ROOT / "node_modules"):
        if candidate and (Path(candidate) / "gltf-validator" / "package.json").is_file():
            return Path(candidate)
    return None


def has_gltf_validator() -> bool:
    """Capability probe: node on PATH and the npm package installed."""
    return shutil.which("node") is not None and find_node_modules() is not None


def validate_gltf(path: str | os.PathLike, *, timeout: float = 120.0) -> ValidationReport:
    """Validate a .glb/.gltf file; raises KeyDiffError('missing_dependency') without node or the package."""
    path = Path(path)
    if not path.is_file():
        raise KeyDiffError("unreadable_file", f"cannot validate {path}: no such file")
    node = shutil.which("node")
    if node is None:
        raise KeyDiffError("missing_dependency", "the glTF validator needs Node.js ('node' is not on PATH)")
    modules = find_node_modules()
    if modules is None:
        raise KeyDiffError(
            "missing_dependency", f"npm package gltf-validator not found under {_REPO_ROOT / 'node_modules'}; run 'npm ci'"
        )
    proc = subprocess.run(
        [node, str(_SCRIPT), str(path.resolve()), str(modules)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        code = "missing_dependency" if proc.returncode == 3 else "unreadable_file"
        raise KeyDiffError(code, f"glTF validator failed on {path.name}: {proc.stderr.strip()[:300]}")
    return _parse_report(json.loads(proc.stdout))


def _parse_report(report: dict) -> ValidationReport:
    issues = report.get("issues", {})
    messages = tuple(
        ValidationMessage(m.get("code", ""), m.get("message", ""), int(m.get("severity", 0)), m.get("pointer", ""))
        for m in issues.get("messages", [])
    )
    return ValidationReport(
        num_errors=int(issues.get("numErrors", 0)),
        num_warnings=int(issues.get("numWarnings", 0)),
        num_infos=int(issues.get("numInfos", 0)),
        messages=messages,
        info=report.get("info", {}),
    )
