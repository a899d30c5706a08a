"""The SSRF guard makes no connection to what it refuses.

Loopback spellings are tried with 127.0.0.1 not allow-listed against a real listener on loopback that
counts the connections it accepts: none. Private, link-local and metadata targets are tried with the
socket's connect replaced by one that records any non-loopback address and refuses it, so no packet
leaves for them even if the guard were broken (tests send traffic to loopback only)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from services.core.embedded_broker import free_port
from services.core.ssrf import TargetGuard
from services.webhooks.sender import WebhookSender
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

BODY = b'{"bizRequestId":"x","eventCode":1}'
FAKE_DNS = {
    "internal.example.test": "10.0.0.1",
    "metadata.example.test": "169.254.169.254",
    "loop.example.test": "127.0.0.1",
}


class CountingListener:
    """A TCP listener on loopback that counts accepted connections (and answers nothing)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted = 0
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        self._servers.append(await asyncio.start_server(self._accept, "127.0.0.1", self.port))
        if socket.has_ipv6:
            try:
                self._servers.append(await asyncio.start_server(self._accept, "::1", self.port))
            except OSError:
                pass  # no IPv6 loopback here: [::1] then has nothing to reach anyway

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[CountingListener]:
    counting = CountingListener()
    await counting.start()
    yield counting
    await counting.stop()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names that resolve to private addresses without asking a DNS server (the guard's own lookup)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in FAKE_DNS:
            return real(FAKE_DNS[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def outbound_connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every non-loopback address a socket tried to connect to; such a connect is refused, never made."""
    attempted: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def loopback(address: Any) -> bool:
        host = address[0] if isinstance(address, tuple) else ""
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    def connect(self: socket.socket, address: Any) -> None:
        if not loopback(address):
            attempted.append(str(address[0]))
            raise ConnectionRefusedError("the test allows connections to loopback only")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not loopback(address):
            attempted.append(str(address[0]))
            raise ConnectionRefusedError("the test allows connections to loopback only")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempted


async def test_loopback_in_any_spelling_is_refused_and_never_connected(
    listener: CountingListener, fake_dns: None
) -> None:
    sender = WebhookSender(TargetGuard(allowed=[]), timeout_s=2, max_connections=4)
    port = listener.port
    urls = [
        f"http://127.0.0.1:{port}/",
        f"http://[::1]:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://2130706433:{port}/",
        f"http://localhost:{port}/",
        f"http://loop.example.test:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
    ]
    try:
        for url in urls:
            result = await sender.post(url, BODY, {})
            assert result.refused, f"{url} was not refused: {result}"
            assert result.status == 0 and "refused" in result.error
    finally:
        await sender.close()
    assert listener.accepted == 0
    # The listener does count: allow-listed, the same target is connected to.
    allowed = WebhookSender(TargetGuard(allowed=["127.0.0.1/32"]), timeout_s=2, max_connections=4)
    try:
        await allowed.post(f"http://127.0.0.1:{port}/", BODY, {})
    finally:
        await allowed.close()
    assert listener.accepted == 1


async def test_a_redirect_to_loopback_is_not_followed(listener: CountingListener) -> None:
    redirector = Redirector(f"http://127.0.0.1:{listener.port}/")
    await redirector.start()
    # Only the redirecting receiver (on 127.0.0.2) is allow-listed, not where it points.
    sender = WebhookSender(TargetGuard(allowed=["127.0.0.2/32"]), timeout_s=2, max_connections=4)
    try:
        result = await sender.post(f"http://127.0.0.2:{redirector.port}/", BODY, {})
    finally:
        await sender.close()
        await redirector.stop()
    assert result.status == 302 and not result.refused
    assert redirector.hits == 1
    assert listener.accepted == 0


async def test_private_link_local_and_metadata_targets_are_refused_without_a_packet(
    fake_dns: None, outbound_connects: list[str]
) -> None:
    sender = WebhookSender(TargetGuard(allowed=["127.0.0.1/32"]), timeout_s=2, max_connections=4)
    urls = [
        "http://10.0.0.1/callback",
        "http://192.168.1.1/callback",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://[fd00:ec2::254]/",
        "http://internal.example.test/callback",
        "https://metadata.example.test/computeMetadata/v1/",
    ]
    try:
        for url in urls:
            result = await sender.post(url, BODY, {})
            assert result.refused, f"{url} was not refused: {result}"
            assert "is not allow-listed" in result.error
    finally:
        await sender.close()
    assert outbound_connects == []


async def test_the_connect_replacement_would_catch_a_broken_guard(
    fake_dns: None, outbound_connects: list[str]
) -> None:
    """With 10.0.0.0/8 allow-listed the guard lets 10.0.0.1 through: the replaced connect sees it (and
    refuses it), so the test above would fail if the guard let anything through."""
    sender = WebhookSender(TargetGuard(allowed=["10.0.0.0/8"]), timeout_s=2, max_connections=4)
    try:
        result = await sender.post("http://internal.example.test/callback", BODY, {})
    finally:
        await sender.close()
    assert not result.refused and result.status == 0
    assert outbound_connects == ["10.0.0.1"]


class Redirector(Receiver):
    """Answers every request with a 302 to `location`."""

    def __init__(self, location: str) -> None:
        super().__init__(host="127.0.0.2")
        self.location = location
        self.hits = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        await send(
            {"type": "http.response.start", "status": 302, "headers": [(b"location", self.location.encode())]}
        )
        await send({"type": "http.response.body", "body": b""})
