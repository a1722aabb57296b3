"""The one running job of the add-on, and `poll_once`: the plain function the UI timer and tests both call.

Headless bpy has no event loop (timers and modal handlers never fire), so nothing here depends on one: the modal
operator calls `poll_once` on each TIMER event, background Blender and tests call it in a loop.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .backend_job import BACKEND_CRASHED, BACKEND_MISSING, CANCELLED, BackendJob, JobState

POLL_INTERVAL = 0.1   # seconds between polls: lines are small, a faster loop only costs Blender time
_HINTS = {
    BACKEND_MISSING: "check the backend Python in the add-on preferences",
    BACKEND_CRASHED: "see the system console for the backend's log",
    "missing_weights": "Check Backend in the add-on preferences shows what is found",
}


@dataclass
class RunningJob:
    """A backend process plus what to do with its result; owns a temporary folder it always removes."""

    job: BackendJob
    workdir: Path
    expected_bundle: Path
    on_result: Callable[[object, Path], str]      # (context, bundle folder) -> one-line summary; builds the scene
    label: str
    report: tuple[str, str] | None = None         # ("INFO" | "ERROR" | "WARNING", text) once finished
    succeeded: bool = False
    notes: list[str] = field(default_factory=list)

    def poll_once(self, context) -> float | None:
        """Drain the backend's lines and update the progress shown; None once the job has finished."""
        state = self.job.poll()
        show_progress(context, self.label, state)
        if not state.finished:
            return POLL_INTERVAL
        self._finish(context, state)
        return None

    def cancel(self) -> None:
        self.job.cancel()

    def _finish(self, context, state: JobState) -> None:
        global ACTIVE
        try:
            if state.succeeded:
                bundle = Path(state.bundle)
                if bundle.resolve() != self.expected_bundle.resolve():
                    raise ValueError(f"the backend reported its result at {bundle}, expected {self.expected_bundle}")
                summary = self.on_result(context, bundle)
                self.report, self.succeeded = ("INFO", summary), True
            else:
                self.report = ("WARNING" if state.error_code == CANCELLED else "ERROR", failure_text(state))
        except Exception as exc:  # a broken bundle or a Blender error while building: reported, never raised
            self.report = ("ERROR", f"KeyDiff3D: the result could not be imported: {exc}")
        finally:
            self.job.cancel("finished")     # no-op when the process is gone; makes sure it is
            shutil.rmtree(self.workdir, ignore_errors=True)
            show_progress(context, "", None)
            if ACTIVE is self:
                ACTIVE = None


def failure_text(state: JobState) -> str:
    hint = _HINTS.get(state.error_code or "")
    text = f"KeyDiff3D [{state.error_code}]: {state.error_message}"
    return f"{text} ({hint})" if hint else text


def show_progress(context, label: str, state: JobState | None) -> None:
    """Mirror the job's state into WindowManager properties the panel draws (and redraw the sidebar)."""
    progress = getattr(context.window_manager, "keydiff3d_progress", None)
    if progress is None:
        return
    progress.running = state is not None and not state.finished
    progress.label = label
    progress.stage = state.stage if state else ""
    progress.fraction = state.fraction if state else 0.0
    progress.message = (state.message or "")[:200] if state else ""
    screen = getattr(context, "screen", None)
    for area in (screen.areas if screen else []):
        if area.type == "VIEW_3D":
            area.tag_redraw()


ACTIVE: RunningJob | None = None


def cancel_active() -> bool:
    if ACTIVE is None:
        return False
    ACTIVE.cancel()
    return True


def abandon_active() -> None:
    """Stop the job and delete its folder without importing anything (add-on disabled, another file loaded)."""
    global ACTIVE
    running, ACTIVE = ACTIVE, None
    if running is not None:
        running.job.cancel("the add-on was disabled or another file was loaded")
        shutil.rmtree(running.workdir, ignore_errors=True)
