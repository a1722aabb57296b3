"""Write an output folder all at once: a hidden staging folder beside it, renamed into place on success.

Every job that writes a folder (bundle, views, frosting, generate) goes through `atomic_output_folder`, so a
failed or killed run never leaves a half-written folder, and an existing folder is replaced only when it is
empty or an earlier output of the same job: never a user's unrelated folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import KeyDiffError


def check_replaceable(out: Path, marker: str, what: str) -> None:
    """Raise unless `out` is absent, an empty folder, or a folder holding `marker` (an earlier `what`)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise KeyDiffError("output_not_writable", f"{out} exists and is not a folder")
    if any(out.iterdir()) and not (out / marker).is_file():
        raise KeyDiffError("output_not_writable", f"{out} is a non-empty folder that is not a {what}; choose another")


@contextmanager
def atomic_output_folder(out: str | os.PathLike, *, marker: str, what: str) -> Iterator[Path]:
    """Yield an empty staging folder; when the block ends without error it becomes `out`.

    marker: a file every complete output of this job holds (it marks a folder that may be replaced).
    """
    out = Path(out).expanduser().absolute()
    check_replaceable(out, marker, what)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise KeyDiffError("output_not_writable", f"cannot create {out.parent}: {exc.strerror}") from exc
    try:
        yield staging
        _move_into_place(staging, out)
    except OSError as exc:
        raise KeyDiffError("output_not_writable", f"cannot write the {what} to {out}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    retired = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(out, retired)
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(retired, out)   # put the previous output back
        raise
    shutil.rmtree(retired, ignore_errors=True)
