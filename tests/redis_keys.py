"""Redis for tests: the server at 127.0.0.1:6379 or `PARLEY_TEST_REDIS_URL`, with a key prefix of its own
per test so that runs sharing the server never meet; the test's keys are deleted after it. Skips the
test, saying why, when the default server does not answer and no URL was given."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get("PARLEY_TEST_REDIS_URL", DEFAULT_REDIS_URL)


@asynccontextmanager
async def fresh_prefix() -> AsyncIterator[tuple[redis.Redis, str]]:
    """A client and a key prefix nobody else uses; the prefix's keys are gone afterwards."""
    client = redis.Redis.from_url(redis_url())
    try:
        await client.ping()
    except redis.ConnectionError as error:
        await client.aclose()
        if "PARLEY_TEST_REDIS_URL" in os.environ:
            raise
        pytest.skip(f"no Redis at {DEFAULT_REDIS_URL}: {error}")
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        yield client, prefix
    finally:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await client.aclose()
