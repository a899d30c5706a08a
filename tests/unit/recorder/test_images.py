"""Watermark images by URL go through the SSRF guard: a metadata or private address is refused with the
caller's code before any connection; inline data: images are left as they are."""

from __future__ import annotations

import pytest

from services.core.errors import ParleyError
from services.core.ssrf import TargetGuard
from services.recorder.errors import RECORD_PARAM_INVALID, WATERMARK_FAILED
from services.recorder.images import ImageFetcher
from services.recorder.params import Overlay


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/x.png", "https://10.1.2.3/x.png", "http://[::1]/x"]
)
async def test_urls_inside_blocked_networks_are_refused_with_the_callers_code(url: str) -> None:
    fetcher = ImageFetcher(TargetGuard(), timeout_s=5, max_bytes=1024)
    try:
        with pytest.raises(ParleyError) as refused:
            await fetcher.fetched((Overlay(type=3, url=url),), WATERMARK_FAILED)
        assert refused.value.code == -10381 and "not allow-listed" in refused.value.message
    finally:
        await fetcher.close()


async def test_inline_images_and_other_overlays_are_not_fetched() -> None:
    fetcher = ImageFetcher(TargetGuard(), timeout_s=5, max_bytes=1024)
    overlays = (Overlay(type=3, url="data:image/png;base64,AAAA"), Overlay(type=2, text="hi"))
    try:
        assert await fetcher.fetched(overlays, RECORD_PARAM_INVALID) == overlays
    finally:
        await fetcher.close()
