"""`curl /metrics` on a running `parley up`: the metrics move during a call.

Two users on the gateway, one room, one publication through the relay (aiortc, loopback only) and one
subscription; every service's /metrics is scraped before, during and after, as Prometheus would.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from prometheus_client.parser import text_string_to_metric_families

from services.core.config import ServiceName
from tests.integration.cli.running import RunningPlatform, running_platform
from tests.integration.licence_helpers import create_app
from tests.integration.media_call import call_in_a_room

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def ticking_platform(tmp_path: Path) -> Iterator[RunningPlatform]:
    # Metering ticks (the relay's byte counters) every second instead of every ten.
    with running_platform(tmp_path, PARLEY_RELAY__METERING_INTERVAL_S="1") as platform:
        yield platform


def banner_address(banner: str, service: ServiceName, pattern: str) -> str:
    line = next(line for line in banner.splitlines() if line.startswith(f"  {service.value} "))
    found = re.search(pattern, line)
    assert found, line
    return found.group(1)


async def scrape(http: httpx.AsyncClient, url: str) -> Samples:
    response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, series), v in samples.items() if n == name and wanted <= series)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s:.0f}s: {what}") from None


async def test_metrics_move_during_a_call(ticking_platform: RunningPlatform) -> None:
    platform = ticking_platform
    banner = platform.banner
    metrics = {name: banner_address(banner, name, r"metrics (\S+)") for name in ServiceName}
    licence_address = banner_address(banner, ServiceName.LICENCE, r"grpc\s+(\S+)")
    ws_url = platform.url.replace("http://", "ws://") + "/ws/v1"
    async with httpx.AsyncClient(timeout=10) as http, grpc.aio.insecure_channel(licence_address) as channel:
        before = {name: await scrape(http, url) for name, url in metrics.items()}
        for name, samples in before.items():
            # Every service counts the gRPC requests it answers (parley up's own health checks at least).
            assert value(samples, "parley_grpc_server_requests_total") > 0, name
        assert value(before[ServiceName.ROOMS], "parley_rooms") == 0
        assert value(before[ServiceName.GATEWAY], "parley_websocket_sessions") == 0

        app = await create_app(LicenceServiceStub(channel), "metrics-test")
        async with call_in_a_room(app, ws_url) as (alice, bob, _):

            async def gateway_counts() -> bool:
                samples = await scrape(http, metrics[ServiceName.GATEWAY])
                return value(samples, "parley_websocket_sessions") == 2

            await eventually(gateway_counts, "two sessions on the gateway")
            rooms = await scrape(http, metrics[ServiceName.ROOMS])
            assert value(rooms, "parley_rooms") == 1
            assert value(rooms, "parley_participants") == 2
            assert value(rooms, "parley_grpc_server_requests_total", code="OK") > value(
                before[ServiceName.ROOMS], "parley_grpc_server_requests_total", code="OK"
            )

            async def media_counted() -> bool:
                relay = await scrape(http, metrics[ServiceName.RELAY])
                return (
                    value(relay, "parley_relay_packets_total", direction="forwarded") > 0
                    and value(relay, "parley_relay_media_bytes_total", direction="forwarded") > 0
                    and value(relay, "parley_relay_media_bytes_total", direction="received") > 0
                )

            await eventually(media_counted, "media forwarded by the relay")
            relay = await scrape(http, metrics[ServiceName.RELAY])
            assert value(relay, "parley_relay_publications") == 1
            assert value(relay, "parley_relay_subscriptions") == 1
            first = value(relay, "parley_relay_packets_total", direction="forwarded")

            async def still_flowing() -> bool:
                later = await scrape(http, metrics[ServiceName.RELAY])
                return value(later, "parley_relay_packets_total", direction="forwarded") > first

            await eventually(still_flowing, "more packets forwarded")

            await http.get(f"{platform.url}/healthz")
            gateway = await scrape(http, metrics[ServiceName.GATEWAY])
            assert value(gateway, "parley_http_requests_total", route="/healthz", status="200") >= 1
            # The gateway's authorisation-push consumer has partitions assigned, so its lag is reported.
            assert any(name == "parley_kafka_consumer_lag" for name, _ in gateway)

            await alice.ok("leave_room")
            await bob.ok("leave_room")

        async def all_gone() -> bool:
            gateway = await scrape(http, metrics[ServiceName.GATEWAY])
            rooms = await scrape(http, metrics[ServiceName.ROOMS])
            relay = await scrape(http, metrics[ServiceName.RELAY])
            return (
                value(gateway, "parley_websocket_sessions") == 0
                and value(rooms, "parley_participants") == 0
                and value(relay, "parley_relay_publications") == 0
            )

        await eventually(all_gone, "the call's sessions, participants and streams gone")
