"""What the licence rules' tests share, on the in-memory store (tests/unit/licence) and on the databases
(tests/integration/licence): a fake clock, refusals by error kind, and devices made ready step by step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from services.core.errors import ErrorKind, ParleyError
from services.licence.licensing import Licensing
from services.licence.records import ActivationRecord, AppRecord, LicenceType

MODEL = "model_1"
AUDIO = LicenceType.AUDIO_CALL
VIDEO = LicenceType.VIDEO_CALL


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@contextmanager
def refused(kind: ErrorKind) -> Iterator[None]:
    with pytest.raises(ParleyError) as caught:
        yield
    assert caught.value.kind is kind, caught.value


async def activated(licensing: Licensing, app: AppRecord, sn: str, *, licences: int = 1) -> ActivationRecord:
    await licensing.devices.add_licences(app.biz_name, MODEL, AUDIO, licences)
    return await licensing.devices.activate(app.biz_name, MODEL, sn, AUDIO)


async def registered(licensing: Licensing, app: AppRecord, sn: str) -> str:
    """Activate and register `sn`; its device secret."""
    await activated(licensing, app, sn)
    ticket = await licensing.devices.issue_sn_ticket(app.biz_name, sn)
    return (await licensing.devices.register_device(sn, ticket.token)).device_secret
