"""recordParam (seed 002 appendix 7) read into plain options, with Parley's extensions (docs/recording.md
"recordParam"). The seed's keys keep their meaning and defaults; an unknown key is ignored (the seed
lists keys such as `crf` that later versions added, and clients send what their SDK version has); a
known key of the wrong type or out of range is refused with RECORD_PARAM_INVALID (-91035).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from services.core.errors import ParleyError
from services.recorder.errors import RECORD_PARAM_INVALID, WATERMARK_FAILED
from services.recorder.files import DEFAULT_FORMAT, FORMATS

# Seed 002 StartRemoteRecord file_path and recordParam splitFilePath: a plain relative folder inside the
# storage folder.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}$")
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")


class Mode(StrEnum):
    """Parley's `mode`: the seed's server recording is one composed file (its width/height/layoutParam
    defaults); `single` writes each feed to its own file, remuxed."""

    COMPOSITE = "composite"
    SINGLE = "single"


class Layout(StrEnum):
    """Parley's `layout` for a composite: a grid of equal cells, or the first stream full size with the
    others small over its bottom right corner (picture in picture). `tagPositions` overrides both."""

    GRID = "grid"
    PIP = "pip"


class SplitType:
    """Seed 002 splitType: 0 no extra file, 1 an extra audio-only file, 2 an extra video-only file."""

    NONE = 0
    AUDIO = 1
    VIDEO = 2


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int


# An image overlap's url: fetched through the SSRF guard (services/recorder/images.py), or given inline.
IMAGE_URL_SCHEMES = ("http://", "https://", "data:image/")


@dataclass(frozen=True)
class Overlay:
    """One entry of seed 002 `overlaps`: type 1 timestamp, 2 text, 3 image; `tag` empty for the whole
    picture, else placed relative to that stream's cell."""

    type: int
    id: str = ""
    tag: str = ""
    x: int = 0
    y: int = 0
    text: str = ""
    font_size: int = 16
    url: str = ""


@dataclass(frozen=True)
class RecordOptions:
    # Seed 002 appendix 7.
    silent_record: bool = False
    width: int = 640
    height: int = 360
    record_total_stream: int = 0
    start_timeout_s: float = 10.0
    split_type: int = SplitType.NONE
    split_file_path: str = ""
    end_type: int = 0
    layout_tags: tuple[str, ...] = ()
    tag_positions: dict[str, Rect] = field(default_factory=dict)
    overlays: tuple[Overlay, ...] = ()
    tag_filter: str = ""
    crf: int | None = None
    # Parley's extensions.
    mode: Mode = Mode.COMPOSITE
    format: str = DEFAULT_FORMAT
    media_type: int = 0
    layout: Layout = Layout.GRID
    background: tuple[int, int, int] = (0, 0, 0)

    def wants(self, kind: str) -> bool:
        """Whether the main file holds `kind` (recordResult mediaType: 0 both, 1 audio, 2 video)."""
        return self.media_type == 0 or (self.media_type == 1) == (kind == "audio")

    def split_kind(self) -> str:
        return {SplitType.AUDIO: "audio", SplitType.VIDEO: "video"}.get(self.split_type, "")


def check_folder(value: str, name: str) -> str:
    parts = PurePosixPath(value).parts
    if value and (not _SAFE_PATH.match(value) or value.startswith("/") or ".." in parts):
        raise RECORD_PARAM_INVALID(
            f"{name} is a relative folder of letters, digits, '_', '-', '.' and '/', without '..'"
        )
    return value


def _int(param: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = param.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RECORD_PARAM_INVALID(f"{key} is a whole number from {low} to {high}")
    return value


def _choice(param: dict[str, Any], key: str, default: str, choices: set[str]) -> str:
    value = param.get(key, default)
    if value not in choices:
        raise RECORD_PARAM_INVALID(f"{key} is one of {sorted(choices)}")
    return str(value)


def _rect(value: Any) -> Rect:
    keys = ("xPosition", "yPosition", "width", "height")
    if not isinstance(value, dict) or not all(isinstance(value.get(k), int) for k in keys):
        raise RECORD_PARAM_INVALID("a tagPositions position has whole xPosition, yPosition, width, height")
    if value["width"] <= 0 or value["height"] <= 0 or value["xPosition"] < 0 or value["yPosition"] < 0:
        raise RECORD_PARAM_INVALID("a tagPositions position is inside the picture, with a size")
    return Rect(value["xPosition"], value["yPosition"], value["width"], value["height"])


def parse_overlaps(value: Any) -> tuple[Overlay, ...]:
    """Seed 002 `overlaps` (recordParam and ChangeRemoteRecordWatermark): the enabled ones."""
    if not isinstance(value, list):
        raise RECORD_PARAM_INVALID("overlaps is a list")
    overlays = []
    for entry in value:
        if not isinstance(entry, dict) or entry.get("type") not in (1, 2, 3):
            raise RECORD_PARAM_INVALID("an overlap has type 1 (timestamp), 2 (text) or 3 (image)")
        if not entry.get("enable", False):
            continue
        # The seed spells it xPosition in appendix 7 and xPositon in the JS SDK: both are taken.
        x: Any = entry.get("xPosition", entry.get("xPositon", 0))
        y: Any = entry.get("yPosition", entry.get("yPositon", 0))
        size: Any = entry.get("fontSize", 16)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (x, y, size)):
            raise RECORD_PARAM_INVALID("an overlap's xPosition, yPosition and fontSize are whole numbers")
        if entry["type"] == 3 and not str(entry.get("url", "")).startswith(IMAGE_URL_SCHEMES):
            raise RECORD_PARAM_INVALID("an image overlap's url is an http(s) or data:image/ URL")
        overlays.append(
            Overlay(
                type=entry["type"],
                id=str(entry.get("id", "")),
                tag=str(entry.get("tag", "") or ""),
                x=x,
                y=y,
                text=str(entry.get("text", "")),
                font_size=max(6, min(size, 200)),
                url=str(entry.get("url", "")),
            )
        )
    return tuple(overlays)


def parse_watermark_change(overlaps_json: str) -> tuple[Overlay, ...]:
    """Seed 002 ChangeRemoteRecordWatermark's overlaps (a JSON list, empty when not given): the enabled
    ones, or WATERMARK_FAILED (-10381) saying why they are not acceptable."""
    try:
        return parse_overlaps(json.loads(overlaps_json or "[]"))
    except (ParleyError, json.JSONDecodeError) as error:
        raise WATERMARK_FAILED(f"overlaps not acceptable: {getattr(error, 'message', error)}") from None


def parse_record_param(record_param_json: str) -> RecordOptions:
    if not record_param_json:
        return RecordOptions()
    try:
        param = json.loads(record_param_json)
    except json.JSONDecodeError:
        raise RECORD_PARAM_INVALID("recordParam is not JSON") from None
    if not isinstance(param, dict):
        raise RECORD_PARAM_INVALID("recordParam is a JSON object")
    silent = param.get("silentRecord", False)
    if not isinstance(silent, bool):
        raise RECORD_PARAM_INVALID("silentRecord is true or false")
    tags = param.get("layoutParam", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) and tag for tag in tags):
        raise RECORD_PARAM_INVALID("layoutParam is a list of stream tags")
    positions = param.get("tagPositions", [])
    if not isinstance(positions, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("tag"), str) and entry["tag"] for entry in positions
    ):
        raise RECORD_PARAM_INVALID("tagPositions is a list of {tag, position}")
    tag_filter = param.get("tagFilter", "")
    if not isinstance(tag_filter, str):
        raise RECORD_PARAM_INVALID("tagFilter is a tag prefix")
    split_file_path = param.get("splitFilePath", "")
    if not isinstance(split_file_path, str):
        raise RECORD_PARAM_INVALID("splitFilePath is a folder")
    background = param.get("background", "#000000")
    if not isinstance(background, str) or not _COLOUR.match(background):
        raise RECORD_PARAM_INVALID("background is a colour #RRGGBB")
    timeout = param.get("startTimeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise RECORD_PARAM_INVALID("startTimeout is seconds, from 1 to 600")
    options = RecordOptions(
        silent_record=silent,
        # Even sizes: YUV 4:2:0 halves them.
        width=_int(param, "width", 640, 16, 3840) // 2 * 2,
        height=_int(param, "height", 360, 16, 2160) // 2 * 2,
        record_total_stream=_int(param, "recordTotalStream", 0, 0, 64),
        start_timeout_s=float(timeout),
        split_type=_int(param, "splitType", SplitType.NONE, 0, 2),
        split_file_path=check_folder(split_file_path, "splitFilePath"),
        end_type=_int(param, "endType", 0, 0, 1),
        layout_tags=tuple(tags),
        tag_positions={entry["tag"]: _rect(entry.get("position")) for entry in positions},
        overlays=parse_overlaps(param.get("overlaps", [])),
        tag_filter=tag_filter,
        crf=_int(param, "crf", 23, 0, 51) if "crf" in param else None,
        mode=Mode(_choice(param, "mode", Mode.COMPOSITE, {m.value for m in Mode})),
        format=_choice(param, "format", DEFAULT_FORMAT, set(FORMATS)),
        media_type=_int(param, "mediaType", 0, 0, 2),
        layout=Layout(_choice(param, "layout", Layout.GRID, {layout.value for layout in Layout})),
        background=tuple(int(background[i : i + 2], 16) for i in (1, 3, 5)),  # type: ignore[arg-type]
    )
    if options.split_type and options.media_type:
        raise RECORD_PARAM_INVALID("splitType needs mediaType 0: the main file holds what is split off")
    return options
