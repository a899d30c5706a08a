"""A doorbell that calls its owner: video from a test pattern, audio from a WAV file (or a tone).

    python doorbell.py --data-folder ./bell --sn P1_door01 --model-id M1 --open-id alice \\
        [--biz-name <bizName> --ticket <snTicket>] [--wav bell.wav] [--seconds 20]

The first run activates the device (needs --biz-name; an operator route, so from the platform's machine
or with PARLEY_OPERATOR_TOKEN) and registers it with the snTicket (`parley device ticket`): the device
secret then lives in the data folder and later runs only call. The owner must have authorised the device
(`parley device authorise`). Prints one JSON line when the call is over: what was sent and received.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from typing import Any

from parley_sdk import (
    AudioData,
    AudioFormat,
    CallMedia,
    Device,
    DeviceListener,
    StreamType,
    VideoData,
    VideoInfo,
)
from parley_sdk.sources import energy, pattern_frames, play, sound_file_pcm, tone

WIDTH, HEIGHT, FPS = 320, 240, 15


class Doorbell(DeviceListener):
    def __init__(self) -> None:
        self.device: Device | None = None
        self.media_started = asyncio.Event()
        self.received = {"audio_frames": 0, "video_frames": 0, "audio_energy": 0.0}
        self.events: list[str] = []

    def on_update_authorize_status(self, open_id: str, status: int) -> None:
        self.events.append(f"authorisation {open_id} {status}")

    def on_start_real_play(self, call_id: str) -> None:
        self.events.append("start real play")
        self.media_started.set()

    def on_stop_real_play(self, call_id: str) -> None:
        self.events.append("stop real play")

    def on_start_recv_audio_stream(self, call_id: str) -> None:
        self.events.append("receiving audio")

    def on_start_recv_video_stream(self, call_id: str) -> None:
        self.events.append("receiving video")

    def on_recv_stream(self, stream_type: StreamType, data: AudioData | VideoData) -> None:
        if isinstance(data, AudioData):
            self.received["audio_frames"] += 1
            self.received["audio_energy"] = max(self.received["audio_energy"], energy(data.data))
        else:
            self.received["video_frames"] += 1

    def on_recv_command(self, command: str, call_id: str) -> None:
        self.events.append(command)

    def on_call_end(self, call_id: str, reason: str, by: str, keep_time_ms: int) -> None:
        self.events.append(f"call end {reason} by {by or 'platform'} after {keep_time_ms} ms")


async def ring(args: argparse.Namespace) -> dict[str, Any]:
    bell = Doorbell()
    audio_format = AudioFormat()
    device = Device(
        args.data_folder, args.sn, args.model_id, bell,
        gateway_url=args.url, operator_token=os.environ.get("PARLEY_OPERATOR_TOKEN"),
        ice_hosts=tuple(args.ice_host) or None,
    )  # fmt: skip
    if not device.is_registered():
        await device.activate(args.biz_name, CallMedia.VIDEO)
        await device.register(args.ticket)
    await device.connect()
    pcm = sound_file_pcm(args.wav, audio_format) if args.wav else tone(audio_format, 660, 0.5) + bytes(8000)
    call_id = await device.call(
        args.open_id,
        CallMedia.VIDEO,
        VideoInfo(WIDTH, HEIGHT, FPS),
        caller_camera_on=True,
        callee_camera_on=True,
    )
    feeding: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(args.answer_timeout_s):
            await bell.media_started.wait()
        feeding = asyncio.create_task(
            play(device, audio_format, pcm, pattern_frames(WIDTH, HEIGHT, FPS), FPS)
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.seconds):
                await device.call_ended.wait()
        if not device.call_ended.is_set():
            await device.hang_up()
            async with asyncio.timeout(10):
                await device.call_ended.wait()
    finally:
        if feeding is not None:
            feeding.cancel()
        await device.close()
    return {"call_id": call_id, "received": bell.received, "events": bell.events}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the platform's gateway")
    parser.add_argument("--data-folder", required=True)
    parser.add_argument("--sn", required=True, help="<ProductId>_<DeviceName>")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--open-id", required=True, help="the owner to call")
    parser.add_argument("--biz-name", help="the app (first run: activation)")
    parser.add_argument("--ticket", help="the snTicket (first run: registration)")
    parser.add_argument("--wav", help="a sound file to play (a tone if none)")
    parser.add_argument("--seconds", type=float, default=20, help="hang up after this long")
    parser.add_argument("--answer-timeout-s", type=float, default=40)
    parser.add_argument("--ice-host", action="append", default=[], help="offer only this local address")
    print(json.dumps(asyncio.run(ring(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
