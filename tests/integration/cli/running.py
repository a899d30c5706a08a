"""`parley up` as a user runs it, for the command-line tests: a real process tree of the broker and seven
services on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.core.config import ServiceName
from services.core.embedded_broker import free_port, free_port_block

PARLEY = [sys.executable, "-m", "services.cli.main"]


def processes_with_marker(marker: str) -> list[int]:
    """Every live process whose environment carries `marker`: the platform and all it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def run_parley(args: list[str], marker: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PARLEY, *args],
        env={**os.environ, "PARLEY_TEST_MARKER": marker, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class RunningPlatform:
    process: subprocess.Popen[str]
    url: str
    data_dir: Path
    marker: str
    banner: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws/v1"

    def service_pid(self, name: ServiceName) -> int:
        for pid in processes_with_marker(self.marker):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if f"services.{name.value}".encode() in cmdline:
                return pid
        raise LookupError(name)


@contextmanager
def running_platform(tmp_path: Path, **env: str) -> Iterator[RunningPlatform]:
    """`parley up` in its own process tree (marked, so the tests can find every process of it), with
    `env` added to its environment; killed whole at the end."""
    marker = uuid.uuid4().hex
    http_port = free_port()
    process = subprocess.Popen(
        [
            *PARLEY,
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--http-port",
            str(http_port),
            "--grpc-port-base",
            str(free_port_block(7)),
        ],
        env={**os.environ, "PARLEY_TEST_MARKER": marker, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner = []
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("parley up exited:\n" + "".join(banner))
        banner.append(line)
        if line.startswith("Health:"):
            break
    try:
        yield RunningPlatform(
            process, f"http://127.0.0.1:{http_port}", tmp_path / "data", marker, "".join(banner)
        )
    finally:
        stop_platform(process, marker)


def stop_platform(process: subprocess.Popen[str], marker: str) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    for pid in processes_with_marker(marker):
        os.kill(pid, signal.SIGKILL)
