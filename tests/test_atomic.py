"""Output folders are written all at once and never replace a user's unrelated folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.atomic import atomic_output_folder
from backend.errors import KeyDiffError


def test_a_finished_block_becomes_the_folder_and_leaves_no_staging(tmp_path: Path) -> None:
    with atomic_output_folder(tmp_path / "out", marker="done.json", what="test output") as staging:
        (staging / "done.json").write_text("{}")
        assert not (tmp_path / "out").exists()          # nothing visible until the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "done.json").is_file()


def test_a_failing_block_keeps_the_earlier_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "done.json").write_text("earlier")
    with pytest.raises(RuntimeError):
        with atomic_output_folder(out, marker="done.json", what="test output") as staging:
            (staging / "done.json").write_text("new")
            raise RuntimeError("killed half-way")
    assert (out / "done.json").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_earlier_output_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "done.json").write_text("earlier")
    (out / "stale.png").write_text("x")
    with atomic_output_folder(out, marker="done.json", what="test output") as staging:
        (staging / "done.json").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["done.json"]


def test_a_users_unrelated_folder_is_never_replaced(tmp_path: Path) -> None:
    documents = tmp_path / "Documents"
    documents.mkdir()
    (documents / "thesis.tex").write_text("years of work")
    with pytest.raises(KeyDiffError, match="not a test output") as info:
        with atomic_output_folder(documents, marker="done.json", what="test output"):
            pass
    assert info.value.code == "output_not_writable"
    assert (documents / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Documents"]
