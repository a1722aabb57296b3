"""The add-on's side of the protocol: it agrees with the backend's, survives hostile output, and runs jobs safely.

Everything here is the add-on's standard-library code (no bpy), exercised with real child processes.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend import errors as backend_errors  # noqa: E402
from backend import protocol as backend_protocol  # noqa: E402
from keydiff3d_addon import protocol_reader  # noqa: E402
from keydiff3d_addon.backend_job import BACKEND_CRASHED, BACKEND_MISSING, CANCELLED, BackendJob  # noqa: E402
from keydiff3d_addon.protocol_reader import Message, ProtocolReader, parse_line  # noqa: E402


# --- agreement with backend/protocol.py ------------------------------------------------------------------------
def test_reader_speaks_the_backends_protocol_version_message_types_and_error_codes() -> None:
    assert protocol_reader.PROTOCOL_VERSION == backend_protocol.PROTOCOL_VERSION
    assert protocol_reader.MESSAGE_TYPES == backend_protocol.MESSAGE_TYPES
    assert set(protocol_reader.KNOWN_ERROR_CODES) == set(backend_errors.ERROR_CODES)


def test_every_message_the_backend_encodes_is_read_back_with_its_fields() -> None:
    sent = [
        backend_protocol.encode("hello", protocol=backend_protocol.PROTOCOL_VERSION, version="0.1.0"),
        backend_protocol.encode("progress", stage="skinning", fraction=0.25, message="12 bones"),
        backend_protocol.encode("result", bundle="/tmp/out/bundle"),
        backend_protocol.encode("error", code="invalid_mesh", message="the mesh has no faces"),
    ]
    reader = ProtocolReader()
    messages = [reader.feed(line + "\n") for line in sent]
    assert reader.issues == []
    assert [m.type for m in messages] == ["hello", "progress", "result", "error"]
    assert messages[1].fields == {"stage": "skinning", "fraction": 0.25, "message": "12 bones"}
    assert messages[2].get("bundle") == "/tmp/out/bundle"
    assert messages[3].get("code") == "invalid_mesh"
    assert reader.hello is messages[0]


@pytest.mark.parametrize("line, reason", [
    ('{"type": "hello", "protocol": 2, "version": "9"}', "protocol version 2"),
    ('{"type": "progress", "stage": "x", "fraction": 1.5, "message": ""}', "fraction must lie in [0, 1]"),
    ('{"type": "progress", "stage": "x", "fraction": NaN, "message": ""}', "NaN is not allowed"),
    ('{"type": "progress", "stage": "x", "fraction": true, "message": ""}', "'fraction' must be"),
    ('{"type": "result", "bundle": 7}', "'bundle' must be a string"),
    ('{"type": "result", "bundle": "  "}', "empty bundle path"),
    ('{"type": "launch_missiles"}', "unknown message type"),
    ('[1, 2, 3]', "expected a JSON object"),
    ("Traceback (most recent call last):", "not JSON"),
    ("[" * 30_000, "nested too deeply"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_each_kind_of_bad_line_is_reported_with_a_reason_that_names_it(line, reason) -> None:
    reader = ProtocolReader()
    assert reader.feed(line) is None
    assert len(reader.issues) == 1 and reason in reader.issues[0].reason, reader.issues


def _hostile_lines():
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )
    almost_messages = st.fixed_dictionaries(
        {"type": st.sampled_from(["hello", "progress", "result", "error", "HELLO", "", None, 3])},
        optional={
            "protocol": json_values, "version": json_values, "stage": json_values, "fraction": json_values,
            "message": json_values, "bundle": json_values, "code": json_values,
        },
    ).map(lambda d: json.dumps(d, allow_nan=True))
    return st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v, allow_nan=True)),
        almost_messages,
        almost_messages.map(lambda s: s[: len(s) // 2]),          # cut mid-line
        st.integers(1, 5000).map(lambda n: "[" * n + "]" * n),    # deep nesting
        st.integers(1, 3).map(lambda n: "x" * (protocol_reader.MAX_LINE_CHARS * n)),
    )


LINES_PER_STREAM = 100    # lines are fed as streams, the way a backend writes them


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(lines=st.lists(_hostile_lines(), min_size=LINES_PER_STREAM, max_size=LINES_PER_STREAM))
def test_no_line_however_malformed_raises_and_each_rejected_line_is_reported_once(lines) -> None:
    """1,000 generated lines by default; the slow variant below feeds 10,000."""
    check_stream(lines)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(lines=st.lists(_hostile_lines(), min_size=LINES_PER_STREAM, max_size=LINES_PER_STREAM))
def test_ten_thousand_hostile_lines_never_raise_and_are_each_reported_once(lines) -> None:
    check_stream(lines)


def check_stream(lines: list) -> None:
    reader = ProtocolReader()
    rejected = []
    for number, line in enumerate(lines, start=1):
        message = reader.feed(line)
        if message is None:
            rejected.append(number)
        else:
            assert isinstance(message, Message) and message.type in protocol_reader.MESSAGE_TYPES
            if message.type == "progress":
                assert 0.0 <= message.get("fraction") <= 1.0
    assert [issue.line_number for issue in reader.issues] == rejected
    for issue in reader.issues:
        assert "\n" not in issue.reason and issue.excerpt.isprintable()


def test_a_stream_of_mixed_lines_yields_the_good_messages_and_one_issue_per_bad_line() -> None:
    good = backend_protocol.encode("progress", stage="load", fraction=0.5, message="")
    lines = [good, "garbage", good, "", '{"type": "result"}', good]
    reader = ProtocolReader()
    messages = [reader.feed(line) for line in lines]
    assert [m is not None for m in messages] == [True, False, True, False, False, True]
    assert [issue.line_number for issue in reader.issues] == [2, 4, 5]


def test_parse_line_returns_text_for_non_text_input_instead_of_raising() -> None:
    assert isinstance(parse_line(12), str)           # type: ignore[arg-type]
    assert isinstance(parse_line(None), str)         # type: ignore[arg-type]


# --- BackendJob with real child processes ----------------------------------------------------------------------
def fake_backend(tmp_path: Path, body: str) -> list[str]:
    """A Python child that prints whatever the test wants on stdout, like a (mis)behaving backend."""
    script = tmp_path / "fake_backend.py"
    script.write_text("import json, sys, time\n" + textwrap.dedent(body))
    return [sys.executable, str(script)]


HELLO = json.dumps({"type": "hello", "protocol": 1, "version": "test"})


def test_job_follows_progress_and_ends_with_the_result_bundle(tmp_path: Path) -> None:
    argv = fake_backend(tmp_path, f"""
        print({HELLO!r})
        print(json.dumps({{"type": "progress", "stage": "skinning", "fraction": 0.5, "message": "half"}}))
        print("a log line that went to stdout by mistake")
        print(json.dumps({{"type": "result", "bundle": "/some/bundle"}}))
    """)
    job = BackendJob(argv)
    assert not job.start().finished
    final = job.wait(timeout=30)
    assert final.succeeded and final.bundle == "/some/bundle" and final.fraction == 1.0
    assert len(job.issues) == 1 and job.issues[0].line_number == 3


def test_backend_error_line_becomes_the_jobs_error_with_its_stable_code(tmp_path: Path) -> None:
    argv = fake_backend(tmp_path, f"""
        print({HELLO!r})
        print(json.dumps({{"type": "error", "code": "invalid_mesh", "message": "no faces"}}))
        sys.exit(2)
    """)
    job = BackendJob(argv)
    job.start()
    state = job.wait(timeout=30)
    assert not state.succeeded and (state.error_code, state.error_message) == ("invalid_mesh", "no faces")


def test_a_crash_without_a_result_is_reported_with_the_last_stderr_line(tmp_path: Path) -> None:
    argv = fake_backend(tmp_path, f"""
        print({HELLO!r}, flush=True)
        sys.stderr.write("RuntimeError: out of cheese\\n")
        sys.exit(1)
    """)
    job = BackendJob(argv)
    job.start()
    state = job.wait(timeout=30)
    assert state.error_code == BACKEND_CRASHED
    assert "status 1" in state.error_message and "out of cheese" in state.error_message


def test_a_missing_interpreter_finishes_the_job_at_once_with_a_clear_code(tmp_path: Path) -> None:
    state = BackendJob([str(tmp_path / "no" / "python"), "-m", "backend"]).start()
    assert state.finished and state.error_code == BACKEND_MISSING and "no/python" in state.error_message


def test_cancel_stops_a_busy_backend_and_its_children_quickly(tmp_path: Path) -> None:
    argv = fake_backend(tmp_path, f"""
        import subprocess
        print({HELLO!r}, flush=True)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(json.dumps({{"type": "progress", "stage": "views", "fraction": 0.1, "message": str(child.pid)}}),
              flush=True)
        time.sleep(60)
    """)
    job = BackendJob(argv)
    job.start()
    deadline = time.monotonic() + 30
    while job.poll().stage != "views" and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(job.state.message)
    started = time.monotonic()
    state = job.cancel()
    assert state.error_code == CANCELLED and time.monotonic() - started < 6
    assert job._process.poll() is not None
    assert not _alive(grandchild), "the backend's own child process survived the cancel"


def test_output_after_the_hello_that_never_ends_does_not_block_the_caller(tmp_path: Path) -> None:
    argv = fake_backend(tmp_path, f"""
        print({HELLO!r}, flush=True)
        sys.stdout.write("x" * 3_000_000)
        sys.stdout.flush()
        time.sleep(60)
    """)
    job = BackendJob(argv)
    job.start()
    started = time.monotonic()
    for _ in range(40):
        job.poll()
        time.sleep(0.02)
    assert time.monotonic() - started < 5 and not job.state.finished
    job.cancel()
    assert len(job.issues) <= 1


def _alive(pid: int) -> bool:
    import os

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:   # reaped by init? a zombie still answers kill(0); check its state
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return False
        except OSError:
            return False
        time.sleep(0.1)
    return True
