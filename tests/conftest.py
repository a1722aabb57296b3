"""Shared test helpers: where the real data lives, and skipping cleanly when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; a user's fresh clone has none, so such tests skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


def shared_rig_files() -> list[Path]:
    """Every rigged glTF character in ../shared/data/rigs (empty when the folder is absent)."""
    rigs = SHARED_DATA / "rigs"
    return sorted(p for p in rigs.glob("*") if p.suffix in {".glb", ".gltf"}) if rigs.is_dir() else []


@pytest.fixture
def one_torch_thread():
    """Tiny models are latency-bound: one torch thread is several times faster on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
