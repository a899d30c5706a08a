"""A process killed while it writes the device secret (SIGKILL at a random moment of a write loop) leaves
the old secret or the new one in the data folder, never an unreadable file."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest
from parley_sdk import secret_store
from parley_sdk.secret_store import DataFolder

from tests.integration.python_sdk.conftest import PYTHON

pytestmark = pytest.mark.integration

KILLS = 12
# The writer writes secrets "s<n>" of growing length, so a torn write would show as a short or mixed file.
# It loads parley_sdk/secret_store.py alone (it imports nothing of the SDK), which starts in a tenth of
# the time the whole package (aiortc) takes.
WRITER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("secret_store", sys.argv[2])
store = sys.modules["secret_store"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(store)
DataFolder, DeviceSecret = store.DataFolder, store.DeviceSecret
folder = DataFolder(sys.argv[1])
print("ready", flush=True)
n = 0
while True:
    n += 1
    folder.write_secret(DeviceSecret(sn="P1_bell", biz_name="biz", secret=f"s{n}-" + "x" * (n % 3000)))
"""


def test_a_writer_killed_at_any_moment_leaves_a_readable_secret(tmp_path: Path) -> None:
    folder = DataFolder(tmp_path / "bell")
    previous = 0
    for _ in range(KILLS):
        writer = subprocess.Popen(
            [PYTHON, "-c", WRITER, str(folder.path), secret_store.__file__], stdout=subprocess.PIPE
        )
        try:
            assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
            time.sleep(random.uniform(0.005, 0.15))
        finally:
            writer.kill()
            writer.wait()
        stored = folder.read_secret()
        assert stored is not None and stored.sn == "P1_bell"
        number, padding = stored.secret[1:].split("-")
        assert padding == "x" * (int(number) % 3000)
        previous = int(number)
    assert previous > 0
