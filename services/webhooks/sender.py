"""One HTTP attempt: POST a signed body to a customer's URL through the SSRF guard and report what came
back. Never raises for anything the receiver or the network does: every failure is an `AttemptResult`.

HTTP/1.1 written on the event loop's streams and answers parsed by httptools (llhttp, uvicorn's parser),
not httpcore: httpcore cost about 1 ms of CPU per request here (its pool polls every connection's socket
whenever a request comes or goes, and anyio wraps every read and write), this about 0.05 ms
(bench/README.md, docs/decisions.md). What a callback needs is small: one POST with a known length, the
status, at most MAX_ANSWER_BYTES of the answer, its Retry-After, and keep-alive.

SSRF: a new connection resolves the URL's host through the guard (services/core/ssrf.py) and connects to
the address it judged, so DNS cannot answer differently between the check and the connection; TLS still
verifies the certificate against the URL's host name. Redirects are never followed: a 3xx is an answer
like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

import certifi
import httptools
import httpx

from services.core.ssrf import TargetGuard, TargetRefused

# Enough of an answer to read `{"bizRequestId": ..., "code": 0}`; the rest is not read.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "Parley-Webhooks/1"
# A connection idle longer than this is closed rather than reused (receivers close theirs after a while).
KEEPALIVE_S = 30.0
READ_SIZE = 65536


@dataclass(frozen=True)
class AttemptResult:
    # 0 when no answer came.
    status: int
    body: bytes
    latency_s: float
    # Why no answer came (refused target, connection failed, timed out); empty when one came.
    error: str = ""
    # Seconds the receiver asked us to wait (Retry-After), if it did.
    retry_after_s: float | None = None
    # True when the guard refused the target: no connection was made.
    refused: bool = False


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class InvalidTarget(ValueError):
    """The URL is not one the dispatcher delivers to; nothing was sent."""


@dataclass(frozen=True)
class Target:
    """What a URL says about where and how to send: (scheme, host, port) is the connection's origin."""

    scheme: str
    host: str
    port: int
    # The request line's target (path and query) and the Host header.
    path: bytes
    host_header: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@lru_cache(maxsize=4096)
def parse_target(url: str) -> Target:
    """The URL parsed once (endpoints' URLs repeat for every delivery); InvalidTarget when it is not an
    http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise InvalidTarget(f"invalid URL: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidTarget("only http and https URLs are delivered to")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return Target(parsed.scheme, parsed.host, port, parsed.raw_path, parsed.netloc.decode("ascii"))


class _Answer:
    """httptools' callbacks for one response: status line and headers, the body up to the cap."""

    def __init__(self) -> None:
        self.complete = False
        self.headers_complete = False
        # A length or chunked encoding says where the body ends; without either it ends with the connection.
        self.delimited = False
        self.retry_after: str | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"retry-after":
            self.retry_after = value.decode("latin-1")
        elif lowered in (b"content-length", b"transfer-encoding"):
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.headers_complete = True

    def on_body(self, body: bytes) -> None:
        if self.size < MAX_ANSWER_BYTES:
            self.chunks.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        self.complete = True
        # Known only now: once the message is complete the parser is ready for the next one.
        self.keep_alive = self.parser.should_keep_alive()

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)[:MAX_ANSWER_BYTES]


class ReceiverClosed(Exception):
    """The connection ended before a whole answer came; `partial` when some of one had come."""

    def __init__(self, partial: bool) -> None:
        super().__init__("the receiver closed the connection before a whole answer")
        self.partial = partial


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float) -> bool:
        return (
            not self.writer.is_closing() and not self.reader.at_eof() and now - self.idle_since < KEEPALIVE_S
        )

    def close(self) -> None:
        self.writer.close()


class WebhookSender:
    def __init__(self, guard: TargetGuard, *, timeout_s: float, max_connections: int) -> None:
        """`max_connections`: idle connections kept per origin (the dispatcher's concurrency bounds how many
        are open at once)."""
        self._guard = guard
        self._timeout_s = timeout_s
        self._max_idle = max_connections
        # Idle keep-alive connections per origin, the most recently used last.
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls = ssl.create_default_context(cafile=certifi.where())

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        started = time.monotonic()
        try:
            target = parse_target(url)
        except InvalidTarget as error:
            return AttemptResult(0, b"", 0.0, error=str(error), refused=True)
        request = self._request(target, body, headers)
        try:
            async with asyncio.timeout(self._timeout_s):
                status, answer, retry_after = await self._exchange(target, request)
        except TargetRefused as error:
            return AttemptResult(0, b"", time.monotonic() - started, error=f"refused: {error}", refused=True)
        except TimeoutError:
            return AttemptResult(
                0, b"", time.monotonic() - started, error=f"timed out after {self._timeout_s} s"
            )
        except _ConnectFailed as error:
            return AttemptResult(0, b"", time.monotonic() - started, error=f"connect failed: {error}")
        except (OSError, ReceiverClosed, httptools.HttpParserError) as error:
            return AttemptResult(
                0, b"", time.monotonic() - started, error=f"{type(error).__name__}: {error or 'closed'}"
            )
        return AttemptResult(
            status,
            answer,
            time.monotonic() - started,
            retry_after_s=retry_after_seconds(retry_after, datetime.now(UTC)),
        )

    @staticmethod
    def _request(target: Target, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [
            b"POST " + target.path + b" HTTP/1.1",
            b"host: " + target.host_header.encode("ascii"),
            b"user-agent: " + USER_AGENT.encode("ascii"),
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode("ascii"),
            *(f"{name}: {value}".encode("latin-1") for name, value in headers.items()),
        ]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    async def _exchange(self, target: Target, request: bytes) -> tuple[int, bytes, str | None]:
        connection = self._reused(target)
        if connection is not None:
            try:
                return await self._send(target, connection, request)
            except (ReceiverClosed, ConnectionError) as error:
                # A kept-alive connection the receiver had closed meanwhile: nothing of an answer came, so
                # the request is sent once more on a new connection (as HTTP clients do for idle ones).
                if isinstance(error, ReceiverClosed) and error.partial:
                    raise
        return await self._send(target, await self._connect(target), request)

    def _reused(self, target: Target) -> _Connection | None:
        idle = self._idle.get(target.origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.usable(now):
                return connection
            connection.close()
        return None

    async def _connect(self, target: Target) -> _Connection:
        address = await self._guard.resolve(target.host, target.port)
        try:
            if target.scheme == "https":
                reader, writer = await asyncio.open_connection(
                    address, target.port, limit=READ_SIZE, ssl=self._tls, server_hostname=target.host
                )
            else:
                reader, writer = await asyncio.open_connection(address, target.port, limit=READ_SIZE)
        except (OSError, ssl.SSLError) as error:
            raise _ConnectFailed(str(error) or type(error).__name__) from error
        return _Connection(reader, writer)

    async def _send(
        self, target: Target, connection: _Connection, request: bytes
    ) -> tuple[int, bytes, str | None]:
        """Send `request` and read the answer; the connection goes back to the idle ones when it can carry
        another request, else it is closed."""
        answer = _Answer()
        reusable = False
        try:
            connection.writer.write(request)
            while not answer.complete:
                data = await connection.reader.read(READ_SIZE)
                if not data:
                    if answer.headers_complete and not answer.delimited:
                        break  # the body ended with the connection (HTTP/1.0 style)
                    raise ReceiverClosed(answer.headers_complete or answer.size > 0)
                answer.parser.feed_data(data)
                if answer.size >= MAX_ANSWER_BYTES:
                    break  # the rest is not read; the connection cannot carry another request
            reusable = answer.complete and answer.size < MAX_ANSWER_BYTES and answer.keep_alive
            return answer.parser.get_status_code(), answer.body, answer.retry_after
        finally:
            if reusable:
                connection.idle_since = time.monotonic()
                idle = self._idle.setdefault(target.origin, [])
                idle.append(connection)
                if len(idle) > self._max_idle:
                    idle.pop(0).close()
            else:
                connection.close()

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
                with contextlib.suppress(OSError):
                    await connection.writer.wait_closed()
        self._idle.clear()


class _ConnectFailed(Exception):
    """No connection to the address the guard allowed (refused, unreachable, TLS handshake failed)."""
