"""The platform the SDK tests call through parley_sdk, as an app's backend, a device and its users would:
licence service, room manager, relay and gateway in this process on a broker of their own."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from parley_sdk.operator import App, Operator

from services.core.config import ServiceName
from tests.testing import Platform, start_platform

EXAMPLES = Path(__file__).parents[3] / "sdk" / "python" / "examples"
PYTHON = sys.executable
# Every SDK peer offers only loopback candidates (docs/testing.md: loopback only).
LOOPBACK = ("127.0.0.1",)


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with start_platform(
        tmp_path_factory.mktemp("sdk"),
        ServiceName.LICENCE,
        ServiceName.ROOMS,
        ServiceName.RELAY,
        ServiceName.GATEWAY,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def operator(platform: Platform) -> Operator:
    return Operator(platform.http_url)


@pytest.fixture(scope="module")
async def app(operator: Operator) -> App:
    app = await operator.create_app("sdk-tests")
    await operator.add_licences(app, "M1", "video", 20)
    return app
