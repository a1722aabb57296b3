"""One exception type whose `code` is stable: the CLI prints it, the protocol sends it, tests match on it.

Codes are part of the add-on <-> backend protocol, so existing ones must never be renamed.
"""

from __future__ import annotations

# The stable codes, with what each one means to a user.
ERROR_CODES: dict[str, str] = {
    "invalid_argument": "an option or argument has a value the tool cannot use",
    "invalid_keypoints": "keypoints or edge weights are malformed (NaN, wrong shape, too few)",
    "invalid_rig": "a skeleton is malformed (no single root, cycles, bad parent index)",
    "invalid_mesh": "a mesh cannot be used (no faces, NaN vertices, out-of-range indices, too large)",
    "invalid_image": "an image cannot be used (corrupt, empty, unsupported format, too large)",
    "unreadable_file": "a file is missing, unreadable or not in the format its name says",
    "output_not_writable": "the output folder cannot be created or written",
    "missing_weights": "model weights or a checkpoint are not where they were expected",
    "missing_dependency": "an optional package or tool the chosen option needs is not installed",
    "training_diverged": "training produced non-finite gradients step after step; the weights were not updated",
    "cancelled": "the job was stopped by the user",
    "internal": "a bug: please report it with the log",
}


class KeyDiffError(Exception):
    """An error a user can act on: a stable machine code plus a one-line human message."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}; add it to ERROR_CODES first")
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"
