"""Watermark images given by URL (seed 002 appendix 7 overlaps `url`), fetched once when the recording
starts or its watermarks change, never while pictures are composed.

The URL is a customer's, so it is fetched through the SSRF guard (services/core/ssrf.py): the host's
addresses are judged and the connection goes to the judged address; redirects are not followed. The
image is kept as a `data:` URL in the overlay, the form the compositor draws (watermarks.py).
"""

from __future__ import annotations

import asyncio
import base64
import io
from dataclasses import replace

import httpcore
import httpx
from PIL import Image, UnidentifiedImageError

from services.core.errors import ErrorKind
from services.core.ssrf import PinnedBackend, TargetGuard, TargetRefused
from services.recorder.params import Overlay
from services.recorder.watermarks import IMAGE

USER_AGENT = "Parley-Recorder/1"


class ImageFetcher:
    def __init__(self, guard: TargetGuard, *, timeout_s: float, max_bytes: int) -> None:
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._pool = httpcore.AsyncConnectionPool(network_backend=PinnedBackend(guard), max_connections=8)

    async def fetched(self, overlays: tuple[Overlay, ...], invalid: ErrorKind) -> tuple[Overlay, ...]:
        """The overlays with every http(s) image fetched into a data: URL; `invalid` (with the reason) when
        one cannot be fetched or is not an image."""
        return tuple(
            [
                replace(overlay, url=await self._data_url(overlay.url, invalid))
                if overlay.type == IMAGE and overlay.url.startswith(("http://", "https://"))
                else overlay
                for overlay in overlays
            ]
        )

    async def close(self) -> None:
        await self._pool.aclose()

    async def _data_url(self, url: str, invalid: ErrorKind) -> str:
        try:
            body = await self._get(url)
        except TargetRefused as error:
            raise invalid(f"watermark image {url}: {error}") from None
        except (httpcore.TimeoutException, TimeoutError):
            raise invalid(f"watermark image {url}: no answer within {self._timeout_s:g} s") from None
        except (httpcore.ProtocolError, httpcore.NetworkError, httpx.InvalidURL, OSError) as error:
            raise invalid(f"watermark image {url}: {type(error).__name__} {error}") from None
        try:
            kind = await asyncio.to_thread(_image_format, body)
        except (UnidentifiedImageError, OSError):
            raise invalid(f"watermark image {url}: not an image") from None
        return f"data:image/{kind};base64,{base64.b64encode(body).decode()}"

    async def _get(self, url: str) -> bytes:
        target = httpx.URL(url)
        headers = [("host", target.netloc.decode()), ("user-agent", USER_AGENT)]
        async with asyncio.timeout(self._timeout_s):
            async with self._pool.stream("GET", str(target), headers=headers) as response:
                if response.status != 200:
                    raise OSError(f"answered {response.status}")
                body = bytearray()
                async for chunk in response.aiter_stream():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise OSError(f"larger than {self._max_bytes} bytes")
        return bytes(body)


def _image_format(body: bytes) -> str:
    with Image.open(io.BytesIO(body)) as image:
        image.verify()
        return (image.format or "png").lower()
