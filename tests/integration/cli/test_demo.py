"""`parley demo` as a newcomer runs it: no platform answers at the URL, so it starts one (the seven services
as processes), a doorbell calls a phone user through the Python SDK, and the call is recorded. The files it
names must play (ffprobe reads their streams) and the call's events must be printed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from services.core.embedded_broker import free_port, free_port_block

pytestmark = pytest.mark.integration

PARLEY = [sys.executable, "-m", "services.cli.main"]
CALL_S = 6


def marked_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_parley_demo_starts_a_platform_and_records_a_playable_call(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    data_dir = tmp_path / "data"
    try:
        demo = subprocess.run(
            [
                *PARLEY, "demo", "--url", f"http://127.0.0.1:{free_port()}", "--seconds", str(CALL_S),
                "--data-dir", str(data_dir), "--grpc-port-base", str(free_port_block(7)),
            ],
            env={**os.environ, "PARLEY_TEST_MARKER": marker, "COLUMNS": "400"},
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        for pid in marked_processes(marker):
            os.kill(pid, signal.SIGKILL)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    for event in (
        "ringing:",
        "answered, in room",
        "onStartRealPlay",
        "first video frame from the doorbell, 320x240",
        "recording stopped: ended,",
        "onRecvCommand IV_AVT_COMMAND_CALL_HANG_UP",
        "call ended: time_limit",
        "onStopRealPlay",
    ):
        assert event in out, f"{event!r} not in:\n{out}"
    # The recorder's files (one per feed, or one composed file: docs/recording.md), by absolute path.
    recordings = [Path(path) for path in re.findall(r"^  (/\S+\.(?:webm|mkv|mp4)) ", out, re.MULTILINE)]
    assert recordings, out
    for recording in recordings:
        assert recording.is_relative_to(data_dir.resolve() / "recordings")
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:format=duration", "-of", "json",
             str(recording)],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        streams = json.loads(probe.stdout)
        assert sorted(stream["codec_type"] for stream in streams["streams"]) == ["audio", "video"]
        assert float(streams["format"]["duration"]) > CALL_S / 2
    assert "Usage today" in out and "Webhook deliveries" in out and "Answer a doorbell from a browser" in out
