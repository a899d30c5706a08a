"""Watermarks of a composite recording (seed 002 appendix 7 `overlaps`, ChangeRemoteRecordWatermark):
type 1 the server time (UTC, "YYYY-MM-DD HH:MM:SS"), type 2 a text, type 3 an image, each at
xPosition/yPosition of the whole picture, or of its stream's cell when it names a `tag` (not drawn while
no feed of that tag is in the picture).

Texts are drawn with Pillow's built-in font (no font file needed), white with a dark outline so they
read on any picture; an image is a `data:image/...;base64,` URL (Parley fetches no URL while recording:
docs/recording.md). Each mark is rendered once (a timestamp once a second) into YUV planes and an alpha,
then blended into the picture's planes.
"""

from __future__ import annotations

import base64
import binascii
import io
import time
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from services.recorder.params import Overlay, Rect

TIMESTAMP, TEXT, IMAGE = 1, 2, 3


class HasCell(Protocol):
    cell: Rect


class _Mark:
    """A rendered watermark: Y, U, V planes (U/V at half size) and their alphas, as floats."""

    def __init__(self, rgba: Image.Image) -> None:
        width, height = (rgba.width + 1) // 2 * 2, (rgba.height + 1) // 2 * 2
        padded = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        padded.paste(rgba, (0, 0))
        pixels = np.asarray(padded, dtype=np.float32)
        r, g, b, a = (pixels[..., i] for i in range(4))
        self.y = 16 + (65.738 * r + 129.057 * g + 25.064 * b) / 256
        u = 128 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256
        v = 128 + (112.439 * r - 94.154 * g - 18.285 * b) / 256
        self.alpha = a / 255
        self.u, self.v, self.alpha_half = (_halve(plane) for plane in (u, v, self.alpha))

    def blend(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], x: int, y: int) -> None:
        luma, u, v = planes
        x, y = x // 2 * 2, y // 2 * 2
        h, w = min(self.y.shape[0], luma.shape[0] - y), min(self.y.shape[1], luma.shape[1] - x)
        if h <= 0 or w <= 0:
            return
        _over(luma[y : y + h, x : x + w], self.y[:h, :w], self.alpha[:h, :w])
        hy, hx, hh, hw = y // 2, x // 2, h // 2, w // 2
        _over(u[hy : hy + hh, hx : hx + hw], self.u[:hh, :hw], self.alpha_half[:hh, :hw])
        _over(v[hy : hy + hh, hx : hx + hw], self.v[:hh, :hw], self.alpha_half[:hh, :hw])


def _halve(plane: np.ndarray) -> np.ndarray:
    return plane.reshape(plane.shape[0] // 2, 2, plane.shape[1] // 2, 2).mean(axis=(1, 3))


def _over(target: np.ndarray, mark: np.ndarray, alpha: np.ndarray) -> None:
    target[:] = (target * (1 - alpha) + mark * alpha).round().astype(np.uint8)


def render_text(text: str, font_size: int) -> Image.Image:
    font = ImageFont.load_default(size=font_size)
    stroke = max(1, font_size // 12)
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox(
        (0, 0), text, font=font, stroke_width=stroke
    )
    image = Image.new("RGBA", (max(1, int(right - left)), max(1, int(bottom - top))), (0, 0, 0, 0))
    ImageDraw.Draw(image).text(
        (-left, -top),
        text,
        font=font,
        fill=(255, 255, 255, 255),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, 255),
    )
    return image


def decode_data_url(url: str) -> Image.Image:
    """A data:image/...;base64, URL's picture; raises ValueError when it is not one."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ValueError("not a base64 data:image/ URL")
    try:
        return Image.open(io.BytesIO(base64.b64decode(payload, validate=True))).convert("RGBA")
    except (binascii.Error, OSError) as error:
        raise ValueError(f"not an image: {error}") from None


def timestamp_text(now: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))


class Watermarks:
    def __init__(self, overlays: tuple[Overlay, ...]) -> None:
        self._overlays = overlays
        self._marks: dict[int, _Mark] = {}
        # Timestamps by overlay: the text drawn and its mark, drawn again when the second changes.
        self._stamps: dict[int, tuple[str, _Mark]] = {}
        for index, overlay in enumerate(overlays):
            if overlay.type == TEXT and overlay.text:
                self._marks[index] = _Mark(render_text(overlay.text, overlay.font_size))
            elif overlay.type == IMAGE:
                try:
                    self._marks[index] = _Mark(decode_data_url(overlay.url))
                except ValueError:
                    continue

    def draw(
        self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], cells: Mapping[str, Any], now: float
    ) -> None:
        """Blend every watermark into the picture's planes; `cells` are the placed feeds by tag."""
        for index, overlay in enumerate(self._overlays):
            mark = (
                self._timestamp(index, overlay, now) if overlay.type == TIMESTAMP else self._marks.get(index)
            )
            if mark is None:
                continue
            x, y = overlay.x, overlay.y
            if overlay.tag:
                placed = cells.get(overlay.tag)
                if placed is None:
                    continue
                x, y = placed.cell.x + x, placed.cell.y + y
            mark.blend(planes, x, y)

    def _timestamp(self, index: int, overlay: Overlay, now: float) -> _Mark:
        text = timestamp_text(now)
        drawn = self._stamps.get(index)
        if drawn is None or drawn[0] != text:
            drawn = self._stamps[index] = (text, _Mark(render_text(text, overlay.font_size)))
        return drawn[1]
