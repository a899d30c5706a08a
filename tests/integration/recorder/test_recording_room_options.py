"""Recordings a room asks for when it is made (seed 002 InitRoomConfig `record_third_id`, `filePath`) and
those its app asks for (the app's autoRecord, seed 002 功能配置 "云端自动录制"): for a room made with
create_room and for a device's call once answered; the warnings of a running recording (seed 002
recording callback 50, 500301, 500302) from publishers that go silent or send few pictures; and a
watermark image by http URL, fetched from a real HTTP server through the SSRF guard. The real licence
service, room manager, relay and recorder; publishers are aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
from fractions import Fraction
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from av import VideoFrame
from av.frame import Frame
from parley.licence.v1 import licence_pb2
from PIL import Image

from tests.integration.licence_helpers import App
from tests.integration.protocol_client import Connections
from tests.integration.recorder.conftest import until_media
from tests.pictures import colour_at, near, pictures

pytestmark = pytest.mark.integration

# Short warning times, so the tests need not wait long; a storage folder that is always "short of
# space", so every recording of this module warns 50 once; and empty rooms that end soon.
PLATFORM_SETTINGS = {
    "recorder": {
        "stall_warning_s": 2.0,
        "low_frame_rate_fps": 5.0,
        "frame_rate_window_s": 2.0,
        "low_disk_warning_bytes": 1 << 62,
        # The test's image server on 127.0.0.1 is allowed; other loopback addresses stay refused.
        "image_allowed_targets": "127.0.0.1/32",
    },
    "rooms": {"empty_room_grace_s": 1.0},
}


async def test_create_room_gives_its_recording_the_batch_id_and_folder(
    platform: Any, app: App, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    room = await alice.ok(
        "create_room", ext={"defaultRecord": True, "record_third_id": "batch-7", "filePath": "calls/desk"}
    )
    record_id = room["record_id"]
    assert record_id and room["record_third_id"] == "batch-7"
    await publishers().publish(alice)
    await until_media(alice, record_id, packets=10)
    stopped = await alice.ok("stop_record", record_id=record_id)

    folder = f"calls/desk/{app.biz_name}/{room['room_id']}/{record_id}"
    [file] = stopped["files"]
    assert file["path"] == f"{folder}/{record_id}.mp4"
    assert (platform.storage_dir / file["path"]).stat().st_size == file["size"] > 0
    result = await platform.events.wait_for(record_id, event_code=99)
    assert (result.record_result.status, result.record_result.file_path) == (2, folder)
    assert platform.events.values(record_id, "record_third_id") == ["batch-7"] * len(
        platform.events.events(record_id)
    )

    # The seed: filePath needs defaultRecord; the recorder refuses a folder outside its storage.
    bob = await clients()
    refused = await bob.call("create_room", ext={"filePath": "calls"})
    assert refused["code"] == -91003 and "defaultRecord" in refused["msg"]
    outside = await bob.call(
        "create_room", ext={"defaultRecord": True, "recordStrongDepend": False, "filePath": "../up"}
    )
    assert outside["code"] == 0 and outside["data"]["record_id"] == ""
    assert (await bob.event("on_remote_recording_failed"))["code"] == -91035


@pytest.fixture(scope="module")
async def recorded_app(platform: Any) -> App:
    """An app whose every room is recorded (autoRecord)."""
    created = await platform.licence.CreateApp(
        licence_pb2.CreateAppRequest(
            name="auto-recorded", settings=licence_pb2.AppSettings(auto_record=True)
        ),
        timeout=30,
    )
    return App(created.app.biz_name, created.app.app_id, created.app.workspace_id, created.private_key)


async def test_every_room_of_an_app_with_auto_record_is_recorded_until_it_ends(
    platform: Any, recorded_app: App, clients: Any, publishers: Any
) -> None:
    connections = Connections(recorded_app, response_timeout_s=30, push_timeout_s=30)
    try:
        carol = await connections.open(platform.ws_url)
        room = await carol.ok("create_room")
        record_id = room["record_id"]
        assert record_id
        info = (await carol.ok("get_record_info", record_id=record_id))["record_info"]
        assert info["state"] == "recording"
        await publishers().publish(carol)
        await until_media(carol, record_id, packets=10)
        # Started by the platform, the recording ends with the room (the seed: "通话结束时结束录制").
        await carol.ok("leave_room", room_id=room["room_id"])
        result = await platform.events.wait_for(record_id, event_code=99)
        assert result.record_result.status == 2 and len(result.record_result.files) == 1
        # A P2P room's media never reaches the platform: autoRecord does not apply to it.
        p2p = await carol.ok("create_room", engine=2)
        assert p2p["record_id"] == ""
    finally:
        await connections.close()
    # Rooms of other apps are not recorded.
    dave = await clients()
    assert (await dave.ok("create_room"))["record_id"] == ""


async def test_an_answered_call_of_an_app_with_auto_record_is_recorded(
    platform: Any, recorded_app: App
) -> None:
    connections = Connections(recorded_app, response_timeout_s=30, push_timeout_s=30)
    try:
        phone = await connections.open(platform.ws_url)
        bell = await connections.open_device(platform.ws_url, platform.licence, authorised_user=phone.uid)
        call_id = (await bell.ok("call", open_id=phone.uid, media="audio"))["call_id"]
        await phone.event("on_call_incoming")
        answered = await phone.ok("answer_call", call_id=call_id)
        started = await platform.by_room.wait_for(answered["room_id"], event_code=10)
        assert started.biz_name == recorded_app.biz_name
        await bell.ok("hang_up", call_id=call_id)
        await platform.events.wait_for(started.record_id, event_code=99)
    finally:
        await connections.close()


class Valve(MediaStreamTrack):
    """A track that passes its source's frames while open and holds them back while shut."""

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._open = asyncio.Event()
        self._open.set()

    def shut(self) -> None:
        self._open.clear()

    async def recv(self) -> Frame:
        await self._open.wait()
        return await self._source.recv()


class SlowCamera(VideoStreamTrack):
    """A camera that sends two pictures a second."""

    FPS = 2

    def __init__(self) -> None:
        super().__init__()
        self._count = 0

    async def recv(self) -> Frame:
        await asyncio.sleep(1 / self.FPS)
        self._count += 1
        frame = VideoFrame(width=320, height=240)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts, frame.time_base = self._count * 90000 // self.FPS, Fraction(1, 90000)
        return frame


async def test_a_stream_that_goes_silent_warns_500301_and_short_storage_warns_50(
    platform: Any, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    room = await alice.ok("create_room")
    microphone, camera = Valve(AudioStreamTrack()), Valve(VideoStreamTrack())
    feed_id = await publishers(camera=camera, microphone=microphone).publish(alice)
    started = await alice.ok("start_record", room_id=room["room_id"], record_param={"mode": "single"})
    record_id = started["record_id"]
    await until_media(alice, record_id, packets=10)
    short = await platform.events.wait_for(record_id, event_code=50)
    assert short.feed_id == "" and "free" in short.message
    assert 500301 not in platform.events.values(record_id, "event_code")

    microphone.shut()
    camera.shut()
    silent = await platform.events.wait_for(record_id, event_code=500301)
    assert silent.feed_id == feed_id and "no media" in silent.message
    stopped = await alice.ok("stop_record", record_id=record_id)
    assert stopped["status"] == 2
    result = await platform.events.wait_for(record_id, event_code=99)
    # Each warning once, the recording unharmed by them.
    codes = platform.events.values(record_id, "event_code")
    assert (codes.count(50), codes.count(500301), result.record_result.status) == (1, 1, 2)


async def test_a_camera_sending_few_pictures_warns_500302(
    platform: Any, clients: Any, publishers: Any
) -> None:
    bob = await clients()
    room = await bob.ok("create_room")
    feed_id = await publishers(camera=SlowCamera()).publish(bob)
    record_id = (await bob.ok("start_record", room_id=room["room_id"], record_param={"mode": "single"}))[
        "record_id"
    ]
    slow = await platform.events.wait_for(record_id, event_code=500302)
    assert slow.feed_id == feed_id and "frames/s" in slow.message
    await bob.ok("stop_record", record_id=record_id)
    await platform.events.wait_for(record_id, event_code=99)
    codes = platform.events.values(record_id, "event_code")
    # Its sound never stopped: the stream was slow, not disconnected.
    assert codes.count(500302) == 1 and 500301 not in codes


class ImageServer:
    """A plain HTTP/1.1 server on 127.0.0.1 (port 0) serving one PNG at /mark.png, 404 elsewhere."""

    def __init__(self, png: bytes) -> None:
        self.png = png
        self.paths: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ImageServer:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ")[1].decode()
        self.paths.append(path)
        body, status = (self.png, b"200 OK") if path == "/mark.png" else (b"", b"404 Not Found")
        headers = b"Content-Type: image/png\r\nContent-Length: %d\r\nConnection: close\r\n" % len(body)
        writer.write(b"HTTP/1.1 " + status + b"\r\n" + headers + b"\r\n" + body)
        await writer.drain()
        writer.close()


async def test_a_watermark_image_by_http_url_is_fetched_through_the_ssrf_guard_and_drawn(
    platform: Any, clients: Any, publishers: Any
) -> None:
    red, blue = (220, 30, 30), (30, 30, 220)
    png = io.BytesIO()
    Image.new("RGBA", (48, 48), (*blue, 255)).save(png, format="PNG")
    alice = await clients()
    room = await alice.ok("create_room")
    await publishers(colour=red).publish(alice)
    async with ImageServer(png.getvalue()) as server:

        def mark(host: str, path: str = "/mark.png") -> dict[str, Any]:
            url = f"http://{host}:{server.port}{path}"
            return {"enable": True, "type": 3, "url": url, "xPosition": 16, "yPosition": 16}

        # Loopback outside the allow-list is refused before any connection; so is a URL with no image.
        for refused in (mark("127.0.0.2"), mark("127.0.0.1", "/missing.png")):
            answer = await alice.call(
                "start_record", room_id=room["room_id"], record_param={"overlaps": [refused]}
            )
            assert answer["code"] == -91035, answer
        assert server.paths == ["/missing.png"]
        started = await alice.ok(
            "start_record", room_id=room["room_id"], record_param={"overlaps": [mark("127.0.0.1")]}
        )
    record_id = started["record_id"]
    await until_media(alice, record_id, packets=25)
    stopped = await alice.ok("stop_record", record_id=record_id)
    assert server.paths == ["/missing.png", "/mark.png"]
    [file] = stopped["files"]
    last = pictures(platform.storage_dir / file["path"])[-1]
    assert near(colour_at(last, 40, 40), blue) and near(colour_at(last, 320, 180), red)
