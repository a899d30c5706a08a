"""`parley demo`: a doorbell calls a phone user on a running platform (or one it starts), everything
through the Python SDK (parley_sdk), and prints what happened as it happens.

The doorbell is activated, registered with an snTicket and authorised by the phone user; it places a
video call the phone answers; both send a test pattern and a tone; the phone records the call. Then the
recording's files, the app's usage and its webhook deliveries are shown, as far as the platform offers
them (billing's and webhooks' HTTP APIs; "not available" otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from parley_sdk import (
    AudioFormat,
    CallMedia,
    Device,
    DeviceListener,
    Engine,
    EngineInitParam,
    ProtocolError,
    PublishParam,
    Session,
    SessionListener,
    VideoInfo,
)
from parley_sdk.operator import Operator
from parley_sdk.sources import pattern_frames, play, tone
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from services.cli.supervisor import Platform, PlatformOptions

WIDTH, HEIGHT, FPS = 320, 240, 15
MODEL_ID = "DEMO1"
# The phone stops the recording this long before the call's time limit, so the files are complete
# before the call's room goes away.
RECORD_MARGIN_S = 1.5


@dataclass
class Timeline:
    """The call's events as both sides saw them, printed as they come."""

    console: Console
    started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)

    def add(self, who: str, what: str) -> None:
        line = f"{time.monotonic() - self.started:6.1f}s  {who:<8} {what}"
        self.lines.append(line)
        self.console.print(line)


class DemoDoorbell(DeviceListener):
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.streaming = asyncio.Event()
        self.received: set[str] = set()

    def on_update_authorize_status(self, open_id: str, status: int) -> None:
        self.timeline.add("doorbell", f"onUpdateAuthorizeStatus {open_id} status={status}")

    def on_call_answered(self, call_id: str, room_id: str) -> None:
        self.timeline.add("doorbell", f"call {call_id} answered, joining room {room_id}")

    def on_start_real_play(self, call_id: str) -> None:
        self.timeline.add("doorbell", "onStartRealPlay: sending test pattern and tone")
        self.streaming.set()

    def on_start_recv_audio_stream(self, call_id: str) -> None:
        self.timeline.add("doorbell", "onStartRecvAudioStream: hearing the phone")

    def on_recv_command(self, command: str, call_id: str) -> None:
        self.timeline.add("doorbell", f"onRecvCommand {command}")

    def on_stop_real_play(self, call_id: str) -> None:
        self.timeline.add("doorbell", "onStopRealPlay")

    def on_call_end(self, call_id: str, reason: str, by: str, keep_time_ms: int) -> None:
        self.timeline.add("doorbell", f"call ended: {reason} by {by or 'the platform'}, {keep_time_ms} ms")


class DemoPhone(SessionListener):
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.ringing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.video_frames = 0

    def on_call_incoming(self, call: dict[str, Any]) -> None:
        self.timeline.add("phone", f"ringing: {call['sn']} calls ({call['media']}), call {call['call_id']}")
        self.ringing.put_nowait(call)

    def on_call_end(self, call: dict[str, Any]) -> None:
        self.timeline.add("phone", f"call ended: {call['reason']}, kept {call['keep_time_ms']} ms")
        self.ended.set()

    def on_new_publisher(self, info: Any) -> None:
        self.timeline.add("phone", f"the doorbell publishes feed {info.stream_id}")

    def on_video(self, video: Any, stream_id: str) -> None:
        if self.video_frames == 0:
            self.timeline.add("phone", f"first video frame from the doorbell, {video.width}x{video.height}")
        self.video_frames += 1


@contextlib.asynccontextmanager
async def platform_at(
    url: str, data_dir: Path, grpc_port_base: int, console: Console
) -> AsyncIterator[Path | None]:
    """The running platform at `url`, or one started for the demo (stopped afterwards): its data folder
    when known (where the recordings are)."""
    if await answers(f"{url}/healthz"):
        console.print(f"Using the platform at {url}")
        yield None
        return
    port = int(httpx.URL(url).port or 8080)
    console.print(f"No platform answers at {url}: starting one (data in {data_dir}) …")
    platform = Platform(PlatformOptions(data_dir=data_dir, http_port=port, grpc_port_base=grpc_port_base))
    await platform.start()
    try:
        yield platform.data_dir
    finally:
        platform.stop()


async def answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def optional_api(operator: Operator, path: str, **params: Any) -> Any | None:
    """An API of a service this platform may not have yet: its answer, or None."""
    try:
        return await operator.request("GET", path, params=params)
    except ProtocolError:
        return None


async def run_demo(
    url: str, seconds: int, data_dir: Path, grpc_port_base: int, console: Console
) -> dict[str, Any]:
    async with platform_at(url, data_dir, grpc_port_base, console) as known_data_dir:
        return await _call(Operator(url), seconds, known_data_dir or data_dir, console)


async def _call(operator: Operator, seconds: int, data_dir: Path, console: Console) -> dict[str, Any]:
    timeline = Timeline(console)
    suffix = uuid.uuid4().hex[:8]
    loopback = httpx.URL(operator.url).host in ("127.0.0.1", "localhost")
    ice_hosts = ("127.0.0.1",) if loopback else None

    app = await operator.create_app(f"Parley demo {suffix}")
    timeline.add("app", f"created {app.biz_name} (appId {app.app_id})")
    await operator.add_licences(app, MODEL_ID, "video", 1)
    sn = f"{MODEL_ID}_doorbell{suffix}"
    doorbell = DemoDoorbell(timeline)
    device = Device(
        str(data_dir / "demo" / sn), sn, MODEL_ID, doorbell, gateway_url=operator.url, ice_hosts=ice_hosts
    )
    await device.activate(app.biz_name, CallMedia.VIDEO)
    await device.register(await operator.issue_ticket(app, sn))
    timeline.add("doorbell", f"{sn} activated and registered (secret in {device.folder.secret_path})")
    await device.connect()

    open_id = f"phone_{suffix}"
    phone = DemoPhone(timeline)
    engine = Engine.create()
    engine.init(EngineInitParam(room_url=operator.ws_url, ice_hosts=ice_hosts))
    session: Session = engine.create_session(phone)
    user = await operator.sign_in(app, open_id)
    await session.connect(user.uid, user.sign, user.biz_name, user.sub_biz, user.workspace_id)
    await operator.authorise(app, sn, open_id)
    timeline.add("phone", f"{open_id} signed in and authorised the doorbell")

    audio_format = AudioFormat()
    feeding: list[asyncio.Task[None]] = []
    record: dict[str, Any] = {}
    try:
        call_id = await device.call(
            open_id, CallMedia.VIDEO, VideoInfo(WIDTH, HEIGHT, FPS), caller_camera_on=True,
            callee_camera_on=True, time_limit_s=seconds,
        )  # fmt: skip
        timeline.add("doorbell", f"calling {open_id}: call {call_id}")
        call = await asyncio.wait_for(phone.ringing.get(), 30)
        room_id = await session.answer_call(call["call_id"])
        answered = time.monotonic()
        timeline.add("phone", f"answered, in room {room_id}")
        await session.publish(PublishParam(enable_audio=True, enable_video=True, tag="phone"))
        pattern = pattern_frames(WIDTH, HEIGHT, FPS)
        feeding.append(
            asyncio.create_task(play(session, audio_format, tone(audio_format, 440, 0.4), pattern))
        )
        await asyncio.wait_for(doorbell.streaming.wait(), 30)
        bell = tone(audio_format, 880, 0.3) + bytes(audio_format.bytes_per_period * 70)
        feeding.append(
            asyncio.create_task(play(device, audio_format, bell, pattern_frames(WIDTH, HEIGHT, FPS)))
        )
        record_id = await session.start_record()
        timeline.add("phone", f"recording started: {record_id}")
        with Progress(
            TextColumn("call"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TimeRemainingColumn(), console=console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("call", total=seconds)
            while (elapsed := time.monotonic() - answered) < seconds - RECORD_MARGIN_S:
                progress.update(task, completed=elapsed)
                await asyncio.sleep(0.2)
            record = await session.signalling.request("stop_record", record_id=record_id)
            files_written = len(record.get("files", []))
            timeline.add("phone", f"recording stopped: {record.get('state')}, {files_written} files")
            while not device.call_ended.is_set() and time.monotonic() - answered < seconds + 15:
                progress.update(task, completed=min(seconds, time.monotonic() - answered))
                await asyncio.sleep(0.2)
    finally:
        for feeder in feeding:
            feeder.cancel()
        await device.close()
        await engine.destroy()

    files = [
        {**file, "absolute": str((data_dir / "recordings" / file["path"]).resolve())}
        for file in record.get("files", [])
    ]
    usage = await optional_api(operator, f"/v1/apps/{app.biz_name}/usage/overview", range="today")
    deliveries = await optional_api(operator, f"/v1/apps/{app.biz_name}/deliveries")
    phone_page = f"{operator.url}/phone"
    return {
        "biz_name": app.biz_name, "sn": sn, "open_id": open_id, "call_id": call_id, "record_id": record_id,
        "events": timeline.lines, "files": files, "usage": usage, "deliveries": deliveries,
        "phone_page": phone_page if await answers(phone_page) else None,
        "video_frames_at_phone": phone.video_frames,
    }  # fmt: skip


def report(result: dict[str, Any], console: Console) -> None:
    console.print()
    console.print("[bold]Recording[/bold]")
    for file in result["files"]:
        seconds = (file.get("duration_ms") or 0) / 1000
        console.print(
            f"  {file['absolute']}  ({file.get('uid') or 'all feeds'}, {seconds:.1f} s,"
            f" {file.get('video_codec')})"
        )
    if not result["files"]:
        console.print("  no files")
    usage = result["usage"]
    console.print("[bold]Usage today[/bold]")
    if usage is None:
        console.print("  not available (this platform has no usage API)")
    else:
        call_minutes = sum(usage.get("callMs", {}).values()) / 60000
        subscribed_minutes = usage.get("subscribedStreamMs", 0) / 60000
        console.print(
            f"  call {call_minutes:.2f} min, subscribed streams {subscribed_minutes:.2f} min,"
            f" rooms {usage.get('rooms', 0)}, billable {usage.get('billableMinutes', 0)} min"
        )
    deliveries = result["deliveries"]
    console.print("[bold]Webhook deliveries[/bold]")
    if deliveries is None:
        console.print("  not available (this platform has no webhook deliveries API)")
    else:
        listed = deliveries if isinstance(deliveries, list) else deliveries.get("deliveries", [])
        for delivery in listed:
            console.print(
                f"  {delivery.get('eventType', delivery.get('event_type', '?'))}: {delivery.get('status')}"
            )
        if not listed:
            console.print("  none (set the app's roomStatusCallbackUrl to receive the room's callbacks)")
    console.print("[bold]Answer a doorbell from a browser[/bold]")
    if result["phone_page"]:
        console.print(f"  open {result['phone_page']} and sign in as a user the doorbell may call")
    else:
        console.print("  not available (this platform has no /phone page yet)")
