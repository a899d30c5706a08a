"""What Debian's `ffprobe` (installed by the Makefile) reads in a media file: the check the recording
tests make of every file the recorder writes, independent of PyAV."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Probe:
    format_name: str
    duration_s: float
    size_bytes: int
    # codec_type -> codec_name
    codecs: dict[str, str]
    # codec_type -> frames decoded
    frames: dict[str, int]
    width: int
    height: int


def probe(path: Path) -> Probe:
    """Reads the file and decodes every frame (-count_frames); raises CalledProcessError when ffprobe
    cannot read it."""
    answer = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    data = json.loads(answer.stdout)
    streams = data.get("streams", [])
    video = next((s for s in streams if s["codec_type"] == "video"), {})
    return Probe(
        format_name=data["format"]["format_name"],
        duration_s=float(data["format"].get("duration", 0)),
        size_bytes=int(data["format"]["size"]),
        codecs={s["codec_type"]: s["codec_name"] for s in streams},
        frames={s["codec_type"]: int(s.get("nb_read_frames", 0)) for s in streams},
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
    )
