"""Reads the backend's JSON-lines protocol (DESIGN.md "The protocol") without ever raising into Blender.

Standard library only: this file must not import the backend (one-way door), so it restates the protocol's
version, message types and fields here; tests/test_addon_protocol.py checks they agree with backend/protocol.py.

Whatever the backend (or anything else on its stdout) writes, `ProtocolReader.feed` returns either a checked
`Message` or None, and records exactly one `ProtocolIssue` for each line it could not accept.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
MESSAGE_TYPES = ("hello", "progress", "result", "error")
# backend/errors.py's stable codes; a newer backend may add codes, which are then shown as they come
KNOWN_ERROR_CODES = (
    "invalid_argument", "invalid_keypoints", "invalid_rig", "invalid_mesh", "invalid_image", "unreadable_file",
    "output_not_writable", "missing_weights", "missing_dependency", "training_diverged", "cancelled", "internal",
)
MAX_LINE_CHARS = 64_000      # a real message is < 1 kB; longer lines are noise or hostile
MAX_TEXT_CHARS = 2_000       # stage names and messages are cut to this for the UI
_REQUIRED_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "hello": {"protocol": int, "version": str},
    "progress": {"stage": str, "fraction": (int, float), "message": str},
    "result": {"bundle": str},
    "error": {"code": str, "message": str},
}


@dataclass(frozen=True)
class Message:
    type: str                                   # one of MESSAGE_TYPES
    fields: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True)
class ProtocolIssue:
    line_number: int
    reason: str                                 # one line, for the log and the final report
    excerpt: str                                # the start of the offending line, printable


class ProtocolReader:
    """Turns raw stdout lines into messages; keeps one issue per bad line and the state a job needs."""

    def __init__(self) -> None:
        self.line_number = 0
        self.issues: list[ProtocolIssue] = []
        self.hello: Message | None = None

    def feed(self, raw: str | bytes) -> Message | None:
        self.line_number += 1
        try:
            message = parse_line(raw)
            if isinstance(message, Message) and message.type == "hello":
                if message.get("protocol") != PROTOCOL_VERSION:
                    message = f"protocol version {message.get('protocol')} (this add-on speaks {PROTOCOL_VERSION})"
                else:
                    self.hello = message
        except Exception as exc:  # a last guard: a bug here must still never reach Blender as a traceback
            message = f"unreadable line ({type(exc).__name__})"
        if isinstance(message, str):
            self.issues.append(ProtocolIssue(self.line_number, message, _excerpt(raw)))
            return None
        return message


def parse_line(raw: str | bytes) -> Message | str:
    """A checked Message, or a one-line reason why the line is not one (never raises for any input)."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return "not UTF-8 text"
    if not isinstance(raw, str):
        return f"expected text, got {type(raw).__name__}"
    text = raw.strip()
    if not text:
        return "empty line"
    if len(text) > MAX_LINE_CHARS:
        return f"line of {len(text):,} characters (limit {MAX_LINE_CHARS:,})"
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return "JSON nested too deeply"
    except ValueError as exc:   # JSONDecodeError and the NaN/Infinity rejection
        return f"not JSON ({str(exc).splitlines()[0][:120]})"
    if not isinstance(doc, dict):
        return f"expected a JSON object, got {type(doc).__name__}"
    message_type = doc.get("type")
    if message_type not in MESSAGE_TYPES:
        return f"unknown message type {_short(message_type)}"
    fields = {k: v for k, v in doc.items() if k != "type"}
    for name, expected in _REQUIRED_FIELDS[message_type].items():
        value = fields.get(name)
        if not isinstance(value, expected) or isinstance(value, bool):
            return f"{message_type}: field {name!r} must be {_type_names(expected)}, got {_short(value)}"
    return _checked(message_type, fields)


def _checked(message_type: str, fields: dict[str, Any]) -> Message | str:
    if message_type == "progress":
        try:
            fraction = float(fields["fraction"])
        except OverflowError:
            fraction = math.inf
        if not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
            return f"progress: fraction must lie in [0, 1], got {_short(fields['fraction'])}"
        fields["fraction"] = fraction
    if message_type == "result" and not fields["bundle"].strip():
        return "result: empty bundle path"
    if message_type == "result" and "\x00" in fields["bundle"]:
        return "result: bundle path contains a NUL character"
    if message_type == "error" and not fields["code"].strip():
        return "error: empty code"
    for name, value in fields.items():
        if isinstance(value, str):
            fields[name] = value[:MAX_TEXT_CHARS]
    return Message(message_type, fields)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _type_names(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join({"int": "an integer", "float": "a number", "str": "a string"}[t.__name__] for t in types)


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ cannot happen with json values, but stay safe
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _excerpt(raw: Any) -> str:
    try:
        text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    except Exception:
        return "<unprintable>"
    text = text.strip()[:80]
    return "".join(ch if ch.isprintable() else "?" for ch in text)
