"""What the benchmarks share: a real `parley up` (the broker and seven services as processes, on free
ports, in a temporary data folder) and latency percentiles."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from services.core.embedded_broker import free_port, free_port_block  # noqa: E402


@contextmanager
def running_platform(env: dict[str, str] | None = None) -> Iterator[str]:
    """The gateway URL of a platform that runs until the block ends; `env` is added to its environment
    (PARLEY_* settings of every service)."""
    http_port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        command = [
            sys.executable, "-m", "services.cli.main", "up",
            "--data-dir", data_dir,
            "--http-port", str(http_port),
            "--grpc-port-base", str(free_port_block(7)),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("Health:"):
                    break
            else:
                raise SystemExit("parley up did not come up")
            yield f"http://127.0.0.1:{http_port}"
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(value * 1000 for value in seconds)
    return {
        "min": round(ms[0], 1),
        "p50": round(statistics.median(ms), 1),
        "p90": round(ms[max(0, int(len(ms) * 0.9) - 1)], 1),
        "p99": round(ms[max(0, int(len(ms) * 0.99) - 1)], 1),
        "max": round(ms[-1], 1),
    }
