"""Redis for tests: the server at 127.0.0.1:6379 or `PARLEY_TEST_REDIS_URL`, with a key prefix of its own
per test so that runs sharing the server never meet; the test's keys are deleted after it. Skips the
test, saying why, when the default server does not answer and no URL was given."""

from __future__ import annotations

import asyncio
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


class RedisLink:
    """A TCP path to Redis on 127.0.0.1 (or `host`, an address of a test's own network namespace link) that
    the test can cut (every connection through it closes and new ones are refused) and restore (`open`
    again): a room manager cut off from the store without being stopped."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        target = redis.Redis.from_url(redis_url()).connection_pool.connection_kwargs
        self._target = (target.get("host", "127.0.0.1"), int(target.get("port", 6379)))
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://{self._host}:{self.port}/0"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            _pump(reader, upstream_writer), _pump(upstream_reader, writer), return_exceptions=True
        )


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
