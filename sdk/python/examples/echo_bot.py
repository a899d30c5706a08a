"""A bot that says back what it hears: it creates a room (or joins one), publishes audio, subscribes to
everyone who publishes, and feeds each 10 ms of PCM it receives back into its own audio queue.

    python echo_bot.py --uid bot --sign <signature> --biz-name B --sub-biz <appId> --workspace-id default \\
        [--room-id R --rtoken T] [--seconds 60]

The first line printed is the room (`{"room_id", "rtoken"}`) for others to join; the last, when it stops
(after --seconds, or SIGTERM / Ctrl-C), what it heard.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal

from parley_sdk import (
    AudioData,
    CreateRoomParam,
    Engine,
    EngineInitParam,
    JoinRoomParam,
    PublishParam,
    Session,
    SessionListener,
)
from parley_sdk.sources import energy


class EchoBot(SessionListener):
    def __init__(self) -> None:
        self.session: Session | None = None
        self.heard_bytes = 0
        self.loudest = 0.0

    def on_audio(self, audio: AudioData, stream_id: str) -> None:
        self.heard_bytes += audio.length
        self.loudest = max(self.loudest, energy(audio.data))
        if self.session is not None:
            self.session.feed_audio(audio)


async def serve(args: argparse.Namespace) -> dict[str, object]:
    engine = Engine.create()
    engine.init(EngineInitParam(room_url=args.url, ice_hosts=tuple(args.ice_host) or None))
    bot = EchoBot()
    session = bot.session = engine.create_session(bot)
    credentials = {
        "uid": args.uid, "sign": args.sign, "biz_name": args.biz_name,
        "sub_biz": args.sub_biz, "workspace_id": args.workspace_id,
    }  # fmt: skip
    if args.room_id:
        await session.join_room(JoinRoomParam(args.room_id, args.rtoken, **credentials))
    else:
        await session.create_room(CreateRoomParam(**credentials))
    print(json.dumps({"room_id": session.room_id, "rtoken": session.rtoken}), flush=True)
    await session.publish(PublishParam(enable_audio=True, enable_video=False, tag="echo"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.seconds):
            await stop.wait()
    await session.leave_room()
    await engine.destroy()
    return {"heard_bytes": bot.heard_bytes, "loudest": bot.loudest}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws/v1", help="the gateway's WebSocket")
    for name in ("uid", "sign", "biz-name", "sub-biz"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--workspace-id", default="default")
    parser.add_argument("--room-id", default="")
    parser.add_argument("--rtoken", default="")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--ice-host", action="append", default=[], help="offer only this local address")
    print(json.dumps(asyncio.run(serve(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
