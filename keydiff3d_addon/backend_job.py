"""One backend job as a child process: start it, drain its protocol lines without blocking Blender, cancel it.

Standard library only, no bpy: Blender's UI calls `poll()` from a timer, background Blender and tests call it in
a loop, and tests can drive it with any Python command. Reader threads only move raw lines into queues; all
interpretation happens in `poll()` on the caller's thread, so Blender data is never touched from a thread.
"""

from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Sequence

from .protocol_reader import MAX_LINE_CHARS, ProtocolIssue, ProtocolReader

# add-on side failure codes (the backend's own codes come through the protocol unchanged)
BACKEND_MISSING = "backend_missing"      # the interpreter could not be started
BACKEND_CRASHED = "backend_crashed"      # exited without a result or error line
CANCELLED = "cancelled"                  # same code the backend uses for a user's stop
STDERR_TAIL_LINES = 40
_EOF = object()


@dataclass
class JobState:
    stage: str = "starting"
    fraction: float = 0.0
    message: str = ""
    finished: bool = False
    bundle: str | None = None               # set on success: the result bundle folder
    error_code: str | None = None            # set on failure (backend code or one of the add-on's above)
    error_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.finished and self.bundle is not None and self.error_code is None


class BackendJob:
    """A running `python -m backend ... --json` (or any command speaking the protocol)."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.argv = [str(a) for a in argv]
        self.env = env
        self.cwd = cwd
        self.state = JobState()
        self.reader = ProtocolReader()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._lines: queue.Queue = queue.Queue()
        self._process: subprocess.Popen | None = None
        self._stdout_done = False
        self._threads: list[threading.Thread] = []

    # --- life cycle -------------------------------------------------------------------------------------
    def start(self) -> JobState:
        """Launch the process; a missing or unusable interpreter finishes the job at once with BACKEND_MISSING."""
        try:
            self._process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=self.env, cwd=self.cwd, **_own_process_group(),
            )
        except (OSError, ValueError) as exc:
            return self._finish_error(BACKEND_MISSING, f"cannot start the backend {self.argv[0]!r}: {exc}")
        self._threads = [
            threading.Thread(target=_pump_stdout, args=(self._process.stdout, self._lines), daemon=True),
            threading.Thread(target=_pump_stderr, args=(self._process.stderr, self.stderr_tail), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self.state

    def poll(self) -> JobState:
        """Apply every line that arrived since the last call; notice when the process is gone."""
        if self.state.finished:
            return self.state
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is _EOF:
                self._stdout_done = True
                continue
            self._apply(self.reader.feed(line))
            if self.state.finished:
                self._reap()
                return self.state
        if self._stdout_done and self._process is not None and self._process.poll() is not None:
            self._finish_crashed()
        return self.state

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> JobState:
        """Poll until the job finishes (background Blender, tests); on timeout the job is cancelled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.poll().finished:
            if deadline is not None and time.monotonic() > deadline:
                return self.cancel(f"no result within {timeout:.0f} s")
            time.sleep(interval)
        return self.state

    def cancel(self, reason: str = "cancelled by the user") -> JobState:
        """Stop the process (SIGTERM, then SIGKILL after a grace period); the job ends as CANCELLED."""
        if not self.state.finished:
            self._finish_error(CANCELLED, reason)
        self._terminate()
        return self.state

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def issues(self) -> list[ProtocolIssue]:
        return self.reader.issues

    # --- internals --------------------------------------------------------------------------------------
    def _apply(self, message) -> None:
        if message is None or message.type == "hello":
            return
        if message.type == "progress":
            self.state.stage = message.get("stage")
            self.state.fraction = message.get("fraction")
            self.state.message = message.get("message")
        elif message.type == "result":
            self.state.finished, self.state.bundle = True, message.get("bundle")
            self.state.stage, self.state.fraction = "done", 1.0
        elif message.type == "error":
            self._finish_error(message.get("code"), message.get("message"))

    def _finish_error(self, code: str, message: str) -> JobState:
        self.state.finished, self.state.bundle = True, None
        self.state.error_code, self.state.error_message = code, message
        return self.state

    def _finish_crashed(self) -> None:
        status = self._process.returncode if self._process else None
        detail = _last_meaningful_line(self.stderr_tail)
        if self.reader.hello is None and self.reader.issues:
            detail = f"it does not speak the KeyDiff3D protocol ({self.reader.issues[0].reason}); " + detail
        how = f"was killed by signal {-status}" if status is not None and status < 0 else f"exited with status {status}"
        self._finish_error(BACKEND_CRASHED, f"the backend {how} without a result" + (f": {detail}" if detail else ""))

    def _reap(self) -> None:
        """After the last line the process should exit by itself; do not leave it running."""
        if self._process is None:
            return
        try:
            self._process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self._terminate()

    def _terminate(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            process.wait(timeout=5.0)


def _last_meaningful_line(lines) -> str:
    """The last stderr line with words in it, without the box drawing of rich/typer error panels."""
    for line in reversed(lines):
        text = line.strip().strip("│╭╮╰╯─ ").strip()
        if any(ch.isalnum() for ch in text):
            return text[:300]
    return ""


def _pump_stdout(stream: IO[bytes], lines: queue.Queue) -> None:
    """Raw lines into the queue; an over-long line is passed on cut (once) and its remainder skipped."""
    limit = 4 * MAX_LINE_CHARS + 2
    skipping = False
    try:
        for chunk in iter(lambda: stream.readline(limit), b""):
            if not skipping:
                lines.put(chunk)
            skipping = not chunk.endswith(b"\n")
    except (OSError, ValueError):
        pass
    finally:
        lines.put(_EOF)


def _pump_stderr(stream: IO[bytes], tail: collections.deque) -> None:
    try:
        for chunk in iter(lambda: stream.readline(8192), b""):
            tail.append(chunk.decode("utf-8", "replace").rstrip())
    except (OSError, ValueError):
        pass


def _own_process_group() -> dict:
    """The backend and anything it starts get their own group, so a cancel stops all of them."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        if sys.platform == "win32":
            process.terminate() if sig == signal.SIGTERM else process.kill()
        else:
            os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass
