"""One HTTP attempt: POST a signed body to a customer's URL through the SSRF guard and report what came
back. Never raises for anything the receiver or the network does: every failure is an `AttemptResult`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpcore
import httpx

from services.core.ssrf import PinnedBackend, TargetGuard, TargetRefused

# Enough of an answer to read `{"bizRequestId": ..., "code": 0}`; the rest is not read.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "Parley-Webhooks/1"
# httpcore's pool looks at every connection it holds each time a request comes or goes (and, for each idle
# one, at all the others): with 64 connections to one busy receiver that was a fifth of the dispatcher's
# CPU (bench/README.md). Pools of this many connections keep that small.
CONNECTIONS_PER_POOL = 8


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


class WebhookSender:
    def __init__(self, guard: TargetGuard, *, timeout_s: float, max_connections: int) -> None:
        self._timeout_s = timeout_s
        backend = PinnedBackend(guard)
        pools = max(1, -(-max_connections // CONNECTIONS_PER_POOL))
        self._pools = [
            httpcore.AsyncConnectionPool(
                network_backend=backend,
                max_connections=-(-max_connections // pools),
                keepalive_expiry=30.0,
            )
            for _ in range(pools)
        ]

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, lane: str = "") -> AttemptResult:
        """`lane` picks the connection pool: attempts of one lane (a delivery queue) share connections."""
        started = time.monotonic()
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as error:
            return AttemptResult(0, b"", 0.0, error=f"invalid URL: {error}", refused=True)
        if target.scheme not in ("http", "https") or not target.host:
            return AttemptResult(0, b"", 0.0, error="only http and https URLs are delivered to", refused=True)
        request_headers = [
            ("host", target.netloc.decode()),
            ("user-agent", USER_AGENT),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            *headers.items(),
        ]
        try:
            async with asyncio.timeout(self._timeout_s):
                pool = self._pools[hash(lane) % len(self._pools)]
                async with pool.stream(
                    "POST", str(target), headers=request_headers, content=body
                ) as response:
                    answer = await self._read_capped(response)
                    retry_after = next(
                        (v.decode() for k, v in response.headers if k.lower() == b"retry-after"), None
                    )
        except TargetRefused as error:
            return AttemptResult(0, b"", time.monotonic() - started, error=f"refused: {error}", refused=True)
        except TimeoutError:
            return AttemptResult(
                0, b"", time.monotonic() - started, error=f"timed out after {self._timeout_s} s"
            )
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
            return AttemptResult(
                0, b"", time.monotonic() - started, error=f"connect failed: {error or 'refused'}"
            )
        except httpcore.TimeoutException as error:
            return AttemptResult(0, b"", time.monotonic() - started, error=f"timed out: {error}")
        except (httpcore.ProtocolError, httpcore.NetworkError, httpcore.UnsupportedProtocol) as error:
            return AttemptResult(
                0, b"", time.monotonic() - started, error=f"{type(error).__name__}: {error or 'closed'}"
            )
        return AttemptResult(
            response.status,
            answer,
            time.monotonic() - started,
            retry_after_s=retry_after_seconds(retry_after, datetime.now(UTC)),
        )

    @staticmethod
    async def _read_capped(response: httpcore.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_stream():
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_ANSWER_BYTES:
                break
        return b"".join(chunks)[:MAX_ANSWER_BYTES]

    async def close(self) -> None:
        for pool in self._pools:
            await pool.aclose()
