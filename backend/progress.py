"""Progress of a long job, shown the way the caller wants: a bar on a terminal, JSON lines for the add-on.

Pipelines call `progress.stage(name, fraction, message)` and nothing else, so the same code serves the CLI, the
Blender add-on (through the protocol) and tests (which pass `SilentProgress` or a recorder).
"""

from __future__ import annotations

import sys
from typing import IO, Protocol

from . import protocol


class Progress(Protocol):
    def stage(self, name: str, fraction: float = 0.0, message: str = "") -> None: ...


class SilentProgress:
    def stage(self, name: str, fraction: float = 0.0, message: str = "") -> None:
        pass


class JsonLinesProgress:
    """Protocol `progress` messages on stdout (the add-on reads them)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def stage(self, name: str, fraction: float = 0.0, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        protocol.send("progress", self.stream, stage=name, fraction=round(fraction, 4), message=message)


class ConsoleProgress:
    """One line per stage on stderr, rewritten in place on a terminal; plain lines in logs."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._last: tuple[str, int] | None = None

    def stage(self, name: str, fraction: float = 0.0, message: str = "") -> None:
        percent = int(round(100 * min(max(fraction, 0.0), 1.0)))
        key = (name, percent if self.interactive else percent // 25)
        if key == self._last:
            return
        self._last = key
        width = 24
        bar = "#" * (percent * width // 100) + "-" * (width - percent * width // 100)
        line = f"{name:<12} [{bar}] {percent:3d}%  {message}"
        if self.interactive:
            self.stream.write("\r\033[K" + line + ("\n" if percent >= 100 else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
