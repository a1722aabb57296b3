"""The add-on <-> backend protocol: JSON lines on stdout (DESIGN.md "The protocol"). Standard library only.

Message types, one JSON object per line, each with "type":
    hello     {"protocol": int, "version": str}                       first line of every job
    progress  {"stage": str, "fraction": float in [0, 1], "message": str}
    result    {"bundle": str (absolute path)}                         last line of a job that succeeded
    error     {"code": str (stable, see backend/errors.py), "message": str}  last line of a job that failed
Logs go to stderr; large arrays travel as files in the bundle, never through stdout.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

PROTOCOL_VERSION = 1
MESSAGE_TYPES = ("hello", "progress", "result", "error")


def encode(message_type: str, **fields: Any) -> str:
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"unknown message type {message_type!r}; expected one of {MESSAGE_TYPES}")
    return json.dumps({"type": message_type, **fields}, sort_keys=True, allow_nan=False)


def send(message_type: str, stream: IO[str] | None = None, **fields: Any) -> None:
    stream = stream or sys.stdout
    stream.write(encode(message_type, **fields) + "\n")
    stream.flush()
