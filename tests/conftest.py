"""Fixtures shared by every test: a real Kafka-compatible broker (Tansu) on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.testing import running_broker


@pytest.fixture(scope="session")
async def kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Bootstrap address of a Tansu broker started for this test session, with the topics created."""
    async with running_broker(tmp_path_factory.mktemp("broker") / "broker.log") as bootstrap_servers:
        yield bootstrap_servers
