"""Recording CPU (issue #11), in process time, next to Debian's ffmpeg doing the same work:

1. Remux: the recorder's FeedFile writing H.264 (640x480, 30 fps) + Opus into MP4 and FLV, against
   `ffmpeg -c copy` of the same media (its audio copied too, so also the recorder with video only,
   where both only remux; with audio the recorder transcodes Opus to AAC, as MP4/FLV need). CPU seconds
   per recorded minute.
2. Composite: four 1280x720 H.264 + Opus feeds composed in a 1280x720 grid with mixed sound by the
   recorder's Compositor (its own thread, fed in real time as a relay would), against ffmpeg's `xstack`
   of the same four inputs (scaled to 640x360 cells, amix, x264 veryfast/zerolatency, AAC). CPU seconds per
   recorded second, and whether the compositor kept real time (pictures written vs. its 25 fps ticks).

    .venv/bin/python bench/recording.py [--seconds 20]

Inputs are made with ffmpeg's lavfi sources in a temporary folder. Writes bench/results/recording.json.
The machine is shared: CPU time (not wall time) is what is compared, each pair run back to back.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine

from services.recorder.compositor import Compositor
from services.recorder.files import FORMATS, FeedFile
from services.recorder.params import RecordOptions

FPS = 30
COMPOSITE_FPS = 25
SOURCES = ["testsrc2", "smptebars", "rgbtestsrc", "testsrc"]


def ffmpeg(*args: str) -> float:
    """Run ffmpeg; its CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def make_inputs(folder: Path, seconds: int) -> dict[str, Path]:
    """Raw H.264 (Annex B, as the depacketizer gives it) and Ogg Opus for each source, and one MKV of the
    first for ffmpeg's remux."""
    made: dict[str, Path] = {}
    for index, source in enumerate(SOURCES):
        size, rate = ("640x480", FPS) if index == 0 else ("1280x720", COMPOSITE_FPS)
        video = folder / f"{source}.h264"
        ffmpeg(
            "-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", str(2 * rate), "-bf", "0",
            "-f", "h264", str(video),
        )  # fmt: skip
        audio = folder / f"{source}.ogg"
        ffmpeg(
            "-f", "lavfi", "-i", f"sine=frequency={440 + 110 * index}:sample_rate=48000", "-t", str(seconds),
            "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20", str(audio),
        )  # fmt: skip
        made[f"{source}.h264"], made[f"{source}.ogg"] = video, audio
    remux_input = folder / "remux_input.mkv"
    ffmpeg("-i", str(made["testsrc2.h264"]), "-i", str(made["testsrc2.ogg"]), "-c", "copy", str(remux_input))
    made["remux_input.mkv"] = remux_input
    return made


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux() if packet.size]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def remux(inputs: dict[str, Path], folder: Path, seconds: int) -> dict[str, Any]:
    video = packets(inputs["testsrc2.h264"])
    audio = packets(inputs["testsrc2.ogg"])
    per_minute = 60 / seconds
    results: dict[str, Any] = {"recorded_s": seconds, "video": "H.264 640x480 30 fps", "audio": "Opus 48 kHz"}
    for fmt in ("mp4", "flv"):
        for with_audio in (False, True):
            path = folder / f"remux{'_av' if with_audio else ''}{FORMATS[fmt].suffix}"
            start = cpu()
            feed = FeedFile(
                path, video_codec="h264", audio_codec="opus" if with_audio else "", fmt=FORMATS[fmt]
            )
            for index, frame in enumerate(video):
                feed.write_video(index * 3000, frame)
                if with_audio:
                    for sound_index in range(index * 5 // 3, (index + 1) * 5 // 3):
                        if sound_index < len(audio):
                            feed.write_audio(sound_index * 960, audio[sound_index])
            feed.close()
            ours = cpu() - start
            target = folder / f"ffmpeg_copy{'_av' if with_audio else ''}{FORMATS[fmt].suffix}"
            if with_audio:
                # FLV takes no Opus: ffmpeg must transcode it too, as the recorder does.
                theirs = ffmpeg(
                    "-i", str(inputs["remux_input.mkv"]), "-c:v", "copy", "-c:a", "aac", str(target)
                )
            else:
                theirs = ffmpeg("-i", str(inputs["remux_input.mkv"]), "-an", "-c", "copy", str(target))
            key = f"{fmt}_{'video_and_audio' if with_audio else 'video_only'}"
            results[key] = {
                "recorder_cpu_s_per_recorded_minute": round(ours * per_minute, 3),
                "ffmpeg_cpu_s_per_recorded_minute": round(theirs * per_minute, 3),
                "ratio": round(ours / theirs, 2) if theirs else None,
                "ffmpeg": "-c copy" if not with_audio else "-c:v copy -c:a aac",
            }
    return results


def composite(inputs: dict[str, Path], folder: Path, seconds: int) -> dict[str, Any]:
    sources = SOURCES[1:] + SOURCES[:1]
    # Four 720p feeds: the three 720p sources and the first scaled up by ffmpeg.
    big_first = folder / "testsrc2_720.h264"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={COMPOSITE_FPS}", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "50", "-bf", "0",
        "-f", "h264", str(big_first),
    )  # fmt: skip
    video_paths = [inputs[f"{s}.h264"] if s != "testsrc2" else big_first for s in sources]
    videos = [packets(path) for path in video_paths]
    audios = [packets(inputs[f"{s}.ogg"]) for s in sources]
    options = RecordOptions(width=1280, height=720)
    failures: list[Any] = []
    path = folder / "composite.mp4"
    start_cpu, start = cpu(), time.monotonic()
    compositor = Compositor(path, options, on_failure=failures.append)
    sinks = [compositor.input(f"f{i}", f"u{i}", f"t{i}", "h264", "opus") for i in range(4)]
    frames = min(len(v) for v in videos)
    for index in range(frames):
        for feed, sink in enumerate(sinks):
            sink.write_video(index * 3600, videos[feed][index])
            for sound in audios[feed][index * 2 : index * 2 + 2]:
                sink.write_audio(index * 1920, sound)
        time.sleep(max(0.0, start + (index + 1) / COMPOSITE_FPS - time.monotonic()))
    compositor.close()
    wall = time.monotonic() - start
    ours = cpu() - start_cpu
    theirs = ffmpeg(
        *(arg for p in video_paths for arg in ("-i", str(p))),
        *(arg for s in sources for arg in ("-i", str(inputs[f"{s}.ogg"]))),
        "-filter_complex",
        "[0:v]scale=640:360[a];[1:v]scale=640:360[b];[2:v]scale=640:360[c];[3:v]scale=640:360[d];"
        "[a][b][c][d]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0[v];[4:a][5:a][6:a][7:a]amix=inputs=4[m]",
        "-map", "[v]", "-map", "[m]", "-r", str(COMPOSITE_FPS),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-crf", "23", "-c:a", "aac",
        str(folder / "xstack.mp4"),
    )  # fmt: skip
    expected_pictures = wall * COMPOSITE_FPS
    return {
        "inputs": "4 x H.264 1280x720 25 fps + Opus",
        "output": "1280x720 grid, H.264 (x264 veryfast, zerolatency, crf 23) + AAC, MP4",
        "recorded_s": round(wall, 2),
        "recorder_cpu_s": round(ours, 2),
        "recorder_cpu_s_per_recorded_s": round(ours / wall, 3),
        "recorder_pictures": compositor.video_packets,
        "recorder_pictures_of_ticks": round(compositor.video_packets / expected_pictures, 3),
        "recorder_cpu_ms_per_picture": round(1000 * ours / max(compositor.video_packets, 1), 1),
        "ffmpeg_xstack_cpu_ms_per_picture": round(1000 * theirs / (seconds * COMPOSITE_FPS), 1),
        "ffmpeg_xstack_cpu_s": round(theirs, 2),
        "ffmpeg_xstack_cpu_s_per_recorded_s": round(theirs / seconds, 3),
        "ratio_per_picture": round(
            (ours / max(compositor.video_packets, 1)) / (theirs / (seconds * COMPOSITE_FPS)), 2
        )
        if theirs
        else None,
        "failures": [str(f) for f in failures],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        inputs = make_inputs(folder, args.seconds)
        result = {
            "machine": machine(),
            "note": (
                "CPU = user + system process time; the machine is shared by other sessions (load_average);"
                " ffmpeg's CPU includes its start-up and probing"
            ),
            "remux": remux(inputs, folder, args.seconds),
            "composite_4x720p_grid": composite(inputs, folder, args.seconds),
        }
    out = Path(__file__).resolve().parent / "results" / "recording.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
