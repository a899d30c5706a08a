"""Pixels of decoded pictures, for the tests that check where a composite recording put each feed and
each watermark."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from services.recorder.params import Rect


def pictures(path: Path) -> list[np.ndarray]:
    """Every picture of the file's first video stream, as RGB arrays."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def colour_at(picture: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    """The mean colour of the 4x4 pixels around (x, y)."""
    return tuple(int(c) for c in picture[y - 2 : y + 2, x - 2 : x + 2].reshape(-1, 3).mean(axis=0))


def near(colour: tuple[int, ...], expected: tuple[int, int, int]) -> bool:
    """Equal but for what encoding and YUV conversion change."""
    return all(abs(a - b) < 40 for a, b in zip(colour, expected, strict=True))


def bright_pixels(picture: np.ndarray, rect: Rect) -> int:
    """Near-white pixels in the rectangle: where a watermark's text is drawn."""
    region = picture[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
    return int((region.min(axis=2) > 200).sum())
