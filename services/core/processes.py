"""Child processes that cannot outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux delivers SIGTERM to the child if its parent dies, even by SIGKILL: no orphaned services.
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    inherit_output: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `args`; its output goes to `log_path`, or with `inherit_output` where this process's goes (a
    relay's workers log beside it, to the container's log), or nowhere."""
    log: IO[bytes] | int | None = None if inherit_output else subprocess.DEVNULL
    if log_path is not None:
        log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            list(args),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=None if log is None else subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    finally:
        if log is not None and not isinstance(log, int):
            log.close()


def stop(process: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL once `timeout_s` has passed."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail(path: Path, lines: int = 1) -> str:
    """The last non-empty lines of a log file, for an error message."""
    try:
        text = path.read_bytes()[-8192:].decode(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def inherit_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, **overrides}
