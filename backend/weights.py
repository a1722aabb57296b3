"""Finding model weights on disk (or in the Hugging Face cache) and saying exactly what is missing.

Weights never ship with the project and are never fetched in tests (HF_HUB_OFFLINE=1). A user passes either a
local folder in diffusers layout or a hub id; a hub id is resolved through the local Hugging Face cache, and
downloaded only when the hub is not in offline mode. Every failure is one `missing_weights` error that names
what was looked for, what is missing, where to get it and where to put it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from backend.errors import KeyDiffError

# A file set counts as present when any one of these exists in the component folder.
DIFFUSERS_WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model.fp16.safetensors.index.json",
    "diffusion_pytorch_model.bin",
)
TRANSFORMERS_WEIGHT_FILES = (
    "model.safetensors",
    "model.fp16.safetensors",
    "model.safetensors.index.json",
    "model.fp16.safetensors.index.json",
    "pytorch_model.bin",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Component:
    """One subfolder of a diffusers-layout model folder."""

    subfolder: str
    weight_files: tuple[str, ...] | None  # None: config only (e.g. a scheduler)
    optional: bool = False


@dataclass(frozen=True)
class WeightsSource:
    """Where the user said weights are, resolved to a folder on disk."""

    folder: Path
    requested: str  # what the user passed (path or hub id), for messages and provenance
    variants: dict[str, str | None]  # subfolder -> "fp16" when only fp16-variant files exist, else None


def _component_problem(folder: Path, component: Component) -> str | None:
    sub = folder / component.subfolder
    if not (sub / "config.json").is_file():
        return f"{component.subfolder}/config.json"
    if component.weight_files and not any((sub / name).is_file() for name in component.weight_files):
        return f"{component.subfolder}/{component.weight_files[0]}"
    return None


def _variant(folder: Path, component: Component) -> str | None:
    if not component.weight_files:
        return None
    sub = folder / component.subfolder
    present = [name for name in component.weight_files if (sub / name).is_file()]
    return "fp16" if present and all(".fp16." in name for name in present) else None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _from_hub(repo_id: str, components: tuple[Component, ...]) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["model_index.json"] + [f"{c.subfolder}/*" for c in components]
    return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=_hub_offline()))


def locate_weights(
    spec: str | os.PathLike | None,
    components: tuple[Component, ...],
    *,
    what: str,
    how_to_get: str,
    default: str,
    env_var: str,
) -> WeightsSource:
    """Resolve `spec` (folder, hub id, or None → $env_var → `default`) to a complete weights folder.

    `what` names the model in messages; `how_to_get` is one sentence telling a user where to get the weights
    and where to put them.
    """
    requested = str(spec) if spec not in (None, "") else os.environ.get(env_var) or default
    path = Path(requested).expanduser()
    if path.exists():
        if not path.is_dir():
            raise KeyDiffError(
                "missing_weights",
                f"{what} weights: {requested!r} is a file; expected a folder in diffusers layout "
                f"({', '.join(c.subfolder + '/' for c in components if not c.optional)}). {how_to_get}",
            )
        folder = path
    elif _HUB_ID.match(requested):
        try:
            folder = _from_hub(requested, components)
        except Exception as exc:  # offline, gated, not cached, network: all the same to the user
            mode = "the local Hugging Face cache (HF_HUB_OFFLINE=1)" if _hub_offline() else "the Hugging Face hub"
            raise KeyDiffError(
                "missing_weights",
                f"{what} weights {requested!r} could not be loaded from {mode} ({type(exc).__name__}). {how_to_get}",
            ) from exc
    else:
        raise KeyDiffError(
            "missing_weights",
            f"{what} weights: no folder at {str(path)!r} and it is not a hub id (owner/name). {how_to_get}",
        )

    missing = [p for c in components if not c.optional and (p := _component_problem(folder, c))]
    if missing:
        raise KeyDiffError(
            "missing_weights",
            f"{what} weights in {str(folder)!r} are incomplete: missing {', '.join(missing)}. {how_to_get}",
        )
    variants = {c.subfolder: _variant(folder, c) for c in components if (folder / c.subfolder).is_dir()}
    return WeightsSource(folder=folder, requested=requested, variants=variants)
