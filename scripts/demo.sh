#!/usr/bin/env bash
# The main-job command of the README: set up (or reuse) .venv, then rig the built-in example body and write the
# result bundle to out/demo (override with: bash scripts/demo.sh -o some/folder).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$ROOT/.venv/bin/keydiff3d" demo "$@"
