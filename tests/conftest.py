"""Fixtures shared by every test: a real Kafka-compatible broker (Tansu) on a free loopback port."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from services.core.embedded_broker import EmbeddedBroker
from services.core.topics import ensure_topics


@pytest.fixture(scope="session")
async def kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Bootstrap address of a Tansu broker started for this test session, with the topics created."""
    # aiokafka logs each refused connection while the broker is still binding its port.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log")
    await broker.start()
    await ensure_topics(broker.bootstrap_servers, partitions=3)
    yield broker.bootstrap_servers
    broker.stop()
