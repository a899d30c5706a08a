"""The topic catalogue: one topic per fact family, versioned in its name (see docs/topics.md)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


class Topic(StrEnum):
    ROOM = "parley.room.v1"
    FEED = "parley.feed.v1"
    CALL = "parley.call.v1"
    RECORDING = "parley.recording.v1"
    METERING = "parley.metering.v1"
    BILLING = "parley.billing.v1"
    LICENCE = "parley.licence.v1"
    WEBHOOK = "parley.webhook.v1"


async def ensure_topics(
    bootstrap_servers: str,
    *,
    partitions: int,
    request_timeout_s: float = 10.0,
    replication_factor: int = 1,
    client_options: dict[str, Any] | None = None,
) -> list[str]:
    """Create every catalogue topic that does not exist yet; return the names it created.
    `client_options`: TLS/SASL for aiokafka (services/core/kafka_security.py)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(request_timeout_s * 1000),
        **(client_options or {}),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic.value for topic in Topic if topic.value not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
                        for name in missing
                    ]
                )
            except TopicAlreadyExistsError:
                # Another process created them between our list and create: the outcome we wanted.
                pass
        return missing
    finally:
        await admin.close()
