"""The platform's health as the gateway sees it: every service's gRPC health check, probed together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc

from services.core.config import ServiceName
from services.core.rpc import check_health

SERVING = "SERVING"


@dataclass(frozen=True)
class HealthReport:
    services: dict[str, str]

    @property
    def healthy(self) -> bool:
        return all(status == SERVING for status in self.services.values())

    def as_dict(self) -> dict[str, object]:
        return {"status": SERVING if self.healthy else "NOT_SERVING", "services": self.services}


class PlatformHealth:
    def __init__(self, channels: dict[ServiceName, grpc.aio.Channel], *, timeout_s: float) -> None:
        self._channels = channels
        self._timeout_s = timeout_s

    async def check(self) -> HealthReport:
        names = list(self._channels)
        statuses = await asyncio.gather(
            *(check_health(self._channels[name], timeout_s=self._timeout_s) for name in names)
        )
        # The gateway answering this request is the proof of its own health.
        report = {ServiceName.GATEWAY.value: SERVING}
        report.update({name.value: status for name, status in zip(names, statuses, strict=True)})
        return HealthReport(services={name.value: report[name.value] for name in ServiceName})
