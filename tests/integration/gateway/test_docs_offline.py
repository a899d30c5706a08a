"""The gateway's /docs renders in headless Chromium that reaches nothing but the gateway on 127.0.0.1:
Swagger UI's script and style come from the package, not a CDN (services/gateway/swagger_ui)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from services.core.http_server import HttpServer
from services.gateway.health import PlatformHealth
from services.gateway.http_api import create_http_app
from tests.integration.chromium import start_chromium

pytestmark = pytest.mark.integration

RENDER_TIMEOUT_S = 30.0


@pytest.fixture
async def gateway_http() -> AsyncIterator[str]:
    server = HttpServer(
        create_http_app(health=PlatformHealth({}, timeout_s=1.0)),
        host="127.0.0.1",
        port=0,
        ws_max_frame_bytes=65536,
    )
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def test_docs_render_without_network(gateway_http: str, tmp_path: Path) -> None:
    driver = await asyncio.to_thread(start_chromium, tmp_path / "chromium", script_timeout_s=30.0)
    try:
        await asyncio.to_thread(driver.get, f"{gateway_http}/docs")
        deadline = time.monotonic() + RENDER_TIMEOUT_S
        paths: list[str] = []
        while time.monotonic() < deadline and "/healthz" not in paths:
            # Swagger UI builds the page from /openapi.json in the browser; until it has, these are absent.
            elements = await asyncio.to_thread(driver.find_elements, By.CSS_SELECTOR, ".opblock-summary-path")
            paths = [element.text for element in elements]
            await asyncio.sleep(0.2)
        await asyncio.to_thread(driver.save_screenshot, str(tmp_path / "docs.png"))
        assert "/healthz" in paths, f"Swagger UI did not render (screenshot {tmp_path / 'docs.png'})"
        title = await asyncio.to_thread(driver.find_element, By.CSS_SELECTOR, ".swagger-ui .info .title")
        assert title.text.startswith("Parley gateway")
        loaded = await asyncio.to_thread(
            driver.execute_script,
            "return performance.getEntriesByType('resource').map(entry => entry.name)",
        )
        assert loaded and all(url.startswith(gateway_http) for url in loaded), loaded
    finally:
        await asyncio.to_thread(driver.quit)
