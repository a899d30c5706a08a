"""Keeps an SFU's log when a run goes wrong, before the run's temporary folder takes it along.

A window that forwarded nothing, a subscribe the SFU refused or a run that raised: its SFU's log is
the only record of why (the relay logs every stream it opens and closes, with the close code). Its
tail is printed at once, and the whole log is copied next to the run's JSON when the run ends.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Protocol

TAIL_LINES = 30


class HasLog(Protocol):
    name: str

    @property
    def log_path(self) -> Path: ...


def window_failed(result: dict[str, Any]) -> str | None:
    """Why a measured window needs its SFU's log, or None."""
    if not result.get("forwarded_packets"):
        return "forwarded nothing"
    if not result.get("all_subscribers_receiving", True):
        return "not every subscriber received"
    return None


class SfuLogs:
    """The logs to keep, copied to `<output stem>.<sfu>.log` beside `output` by `keep`."""

    def __init__(self, output: Path) -> None:
        self._output = output
        self._flagged: dict[str, HasLog] = {}
        # Where `keep` copied them, for the run's JSON.
        self.kept: list[str] = []

    def flag(self, sfu: HasLog, why: str) -> None:
        self._flagged[sfu.name] = sfu
        print(f"{sfu.name}: {why}; the last lines of {sfu.log_path}:", file=sys.stderr)
        try:
            lines = sfu.log_path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        except OSError as error:
            lines = [f"(unreadable: {error})"]
        print("\n".join(lines), file=sys.stderr, flush=True)

    def copy_path(self, sfu: HasLog) -> Path:
        return self._output.with_name(f"{self._output.stem}.{sfu.name}.log")

    def keep(self) -> None:
        """Copy the flagged SFUs' logs beside the output (call before the temporary folder goes)."""
        for sfu in self._flagged.values():
            destination = self.copy_path(sfu)
            try:
                shutil.copyfile(sfu.log_path, destination)
            except OSError as error:
                print(f"{sfu.name}: its log could not be kept: {error}", file=sys.stderr)
                continue
            print(f"{sfu.name}: log kept in {destination}", file=sys.stderr, flush=True)
            self.kept.append(str(destination))
