"""The device API of the seeds' IoT device module (seed 000, the v2 API, and seed 001, its callbacks):
a data folder with the device secret, activation, registration with an snTicket, calls to an authorised
user, hang-up, busy, the authorised-user list and the callbacks, over Parley's HTTP API and protocol v1.

Seed names sit beside Python ones (`doWxCloudVoipCall` is `call`). A call's media goes through the room
the platform makes for it: the device joins it, publishes what `feed_audio` / `feed_video` are given and
receives the user's media, like any `Session`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from parley_sdk.media import AudioData, AudioFormat, VideoCodec, VideoData
from parley_sdk.room import (
    EngineInitParam,
    EngineListener,
    EventType,
    JoinRoomParam,
    PublishParam,
    RtcEvent,
    Session,
    SessionListener,
    StreamInfo,
)
from parley_sdk.secret_store import DataFolder, DeviceSecret
from parley_sdk.signalling import ProtocolError, Signalling

log = logging.getLogger(__name__)

# Seed 000 getVoipUserListV2: at most 10 users a page.
USER_PAGE_MAX = 10
# Seed 000 onRecvCommand: the user hung up normally (comes before onStopRealPlay).
IV_AVT_COMMAND_CALL_HANG_UP = "IV_AVT_COMMAND_CALL_HANG_UP"


class CallMedia(StrEnum):
    """Seed 000 iv_cm_stream_type_e, by name as protocol v1 gives it."""

    AUDIO = "audio"
    VIDEO = "video"


class StreamType(StrEnum):
    """Seed 001 iv_avt_stream_type_e: which kind a stream callback is about."""

    AUDIO = "audio"
    VIDEO = "video"


class NotifyEvent(StrEnum):
    """What `on_notify` reports (seed 001 onNotify: "当前版本主要是拥塞控制的事件回调"). The seed's
    iv_avt_event_e values are not listed in the seed documents, so these are Parley's names."""

    NETWORK_WEAK = "network_weak"  # the relay judged the call's stream weak (protocol on_network_weak)
    SEND_BUFFER_HIGH = "send_buffer_high"  # more audio queued than `send_buffer_warn_bytes`


@dataclass(frozen=True)
class VideoInfo:
    """Seed 000 voip_video_info_s."""

    width: int = 640
    height: int = 480
    fps: int = 15


@dataclass(frozen=True)
class SendBufferStatus:
    """Seed 001 send-buffer status for congestion control: what is queued and not sent yet."""

    audio_bytes: int
    video_frames: int


@dataclass(frozen=True)
class AuthorisedUser:
    open_id: str
    status: int


@dataclass(frozen=True)
class UserPage:
    users: list[AuthorisedUser]
    total: int


class DeviceListener:
    """Seed 000 / 001 callbacks. The SDK calls the Python names; their defaults call the seed's."""

    def on_update_authorize_status(self, open_id: str, status: int) -> None:
        self.onUpdateAuthorizeStatus(open_id, status)

    def on_start_real_play(self, call_id: str) -> None:
        """The user is connected: start feeding audio and video."""
        self.onStartRealPlay(call_id)

    def on_stop_real_play(self, call_id: str) -> None:
        self.onStopRealPlay(call_id)

    def on_start_recv_audio_stream(self, call_id: str) -> None:
        self.onStartRecvAudioStream(call_id)

    def on_start_recv_video_stream(self, call_id: str) -> None:
        self.onStartRecvVideoStream(call_id)

    def on_recv_stream(self, stream_type: StreamType, data: AudioData | VideoData) -> None:
        self.onRecvStream(stream_type, data)

    def on_recv_command(self, command: str, call_id: str) -> None:
        self.onRecvCommand(command, call_id)

    def on_notify(self, event: NotifyEvent, data: dict[str, Any]) -> None:
        self.onNotify(event, data)

    def on_call_end(self, call_id: str, reason: str, by: str, keep_time_ms: int) -> None:
        """Parley's: how the call ended (protocol v1 on_call_end)."""

    def on_call_answered(self, call_id: str, room_id: str) -> None:
        """Parley's: the user answered; the device is joining the call's room."""

    def onUpdateAuthorizeStatus(self, open_id: str, status: int) -> None:
        pass

    def onStartRealPlay(self, call_id: str) -> None:
        pass

    def onStopRealPlay(self, call_id: str) -> None:
        pass

    def onStartRecvAudioStream(self, call_id: str) -> None:
        pass

    def onStartRecvVideoStream(self, call_id: str) -> None:
        pass

    def onRecvStream(self, stream_type: StreamType, data: AudioData | VideoData) -> None:
        pass

    def onRecvCommand(self, command: str, call_id: str) -> None:
        pass

    def onNotify(self, event: NotifyEvent, data: dict[str, Any]) -> None:
        pass


class _CallMedia(SessionListener):
    """Turns the call room's session callbacks into the device module's stream callbacks."""

    def __init__(self, device: Device, call_id: str) -> None:
        self._device = device
        self._call_id = call_id
        self._receiving: set[StreamType] = set()

    def _first(self, kind: StreamType) -> None:
        if kind not in self._receiving:
            self._receiving.add(kind)
            listener = self._device.listener
            if kind is StreamType.AUDIO:
                listener.on_start_recv_audio_stream(self._call_id)
            else:
                listener.on_start_recv_video_stream(self._call_id)

    def on_session_event(self, event: RtcEvent) -> None:
        if event.type is EventType.ICE_LINK and event.code == 0 and event.ext == self._device.feed_id:
            self._device.listener.on_start_real_play(self._call_id)

    def on_audio(self, audio: AudioData, stream_id: str) -> None:
        self._first(StreamType.AUDIO)
        self._device.listener.on_recv_stream(StreamType.AUDIO, audio)

    def on_video(self, video: VideoData, stream_id: str) -> None:
        self._first(StreamType.VIDEO)
        self._device.listener.on_recv_stream(StreamType.VIDEO, video)

    def on_stream_gone(self, info: StreamInfo) -> None:
        self._receiving.clear()


class Device:
    """Seed 000 / 001 device module. `gateway_url` is the platform's HTTP address (http://host:8080);
    the WebSocket is `/ws/v1` on it."""

    def __init__(
        self,
        data_folder: str,
        sn: str,
        model_id: str,
        listener: DeviceListener | None = None,
        *,
        gateway_url: str = "http://127.0.0.1:8080",
        operator_token: str | None = None,
        audio_format: AudioFormat | None = None,
        video_codec: VideoCodec = VideoCodec.VIDEO_CODEC_YUV420P,
        ice_hosts: tuple[str, ...] | None = None,
        send_buffer_warn_bytes: int = 64000,
    ) -> None:
        self.folder = DataFolder(data_folder)
        self.sn = sn
        self.model_id = model_id
        self.listener = listener or DeviceListener()
        self._http_url = gateway_url.rstrip("/")
        self._operator_headers = {"authorization": f"Bearer {operator_token}"} if operator_token else {}
        self._engine_param = EngineInitParam(
            room_url=self._http_url.replace("http", "ws", 1) + "/ws/v1",
            video_codec=video_codec,
            audio_format=audio_format or AudioFormat(),
            ice_hosts=ice_hosts,
        )
        self._send_buffer_warn_bytes = send_buffer_warn_bytes
        self._signalling: Signalling | None = None
        self.session_id = ""
        self._ice_servers: list[dict[str, Any]] = []
        self.call_id = ""
        self.media: CallMedia = CallMedia.VIDEO
        self.caller_camera_on = False
        self.session: Session | None = None
        self.feed_id = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.call_ended = asyncio.Event()

    # --- licence and registration (HTTP) ---

    async def _http(self, method: str, path: str, **options: Any) -> Any:
        async with httpx.AsyncClient(base_url=self._http_url, timeout=30) as client:
            response = await client.request(method, path, **options)
        if response.status_code >= 400:
            try:
                answer = response.json()
                raise ProtocolError(path, answer["code"], answer.get("reason", ""), answer.get("msg", ""))
            except (ValueError, KeyError) as error:
                raise ProtocolError(path, response.status_code, "HTTP", response.text) from error
        return response.json() if response.content else None

    async def activate(self, biz_name: str, licence_type: CallMedia = CallMedia.VIDEO) -> dict[str, Any]:
        """Consumes a licence of the app's pool for this device (seed 000 activateVoipLicenseV2). An operator
        route: the platform answers it from loopback or with the operator token."""
        body = {"modelId": self.model_id, "sn": self.sn, "type": str(licence_type)}
        return dict(
            await self._http(
                "POST", f"/v1/apps/{biz_name}/devices", json=body, headers=self._operator_headers
            )
        )

    async def register(self, sn_ticket: str) -> None:
        """Registers with a one-time snTicket and keeps the secret in the data folder (seed 000/001
        registerAvtVoip; -10008 for a bad ticket)."""
        answer = await self._http("POST", f"/v1/devices/{self.sn}/registration", json={"snTicket": sn_ticket})
        self.folder.write_secret(
            DeviceSecret(sn=self.sn, biz_name=answer["bizName"], secret=answer["deviceSecret"])
        )

    def is_registered(self) -> bool:
        """Whether the data folder holds this device's secret (seed 000 isAvtVoipRegistered reads the key
        file; the platform's `GET /v1/devices/{sn}/registration` is the server's view)."""
        stored = self.folder.read_secret()
        return stored is not None and stored.sn == self.sn

    async def get_user_list(self, offset: int = 0, limit: int = USER_PAGE_MAX) -> UserPage:
        """Users who authorised this device, a page of at most 10 (seed 000 getVoipUserListV2)."""
        if not 0 < limit <= USER_PAGE_MAX:
            raise ValueError(f"limit is 1-{USER_PAGE_MAX} (seed 000)")
        answer = await self._http(
            "GET",
            f"/v1/devices/{self.sn}/users",
            params={"offset": offset, "limit": limit},
            headers={"authorization": f"Device {self._secret().secret}"},
        )
        return UserPage(
            [AuthorisedUser(user["openId"], user["status"]) for user in answer["users"]], answer["total"]
        )

    def _secret(self) -> DeviceSecret:
        stored = self.folder.read_secret()
        if stored is None or stored.sn != self.sn:
            raise RuntimeError(f"{self.sn} is not registered: register with an snTicket first")
        return stored

    # --- the connection ---

    async def connect(self) -> None:
        """Connects to the platform as this device (protocol v1 device connect)."""
        self._signalling = await Signalling.open(self._engine_param.room_url, self._pushed)
        data = await self._signalling.request("connect", sn=self.sn, device_secret=self._secret().secret)
        self.session_id = data["session_id"]
        self._ice_servers = data.get("ice_servers", [])

    @property
    def signalling(self) -> Signalling:
        if self._signalling is None:
            raise RuntimeError("connect first")
        return self._signalling

    async def close(self) -> None:
        await self._end_media()
        if self._signalling is not None:
            await self._signalling.close()
            self._signalling = None

    # --- calls ---

    async def call(
        self,
        open_id: str,
        media: CallMedia = CallMedia.VIDEO,
        video: VideoInfo | None = None,
        *,
        caller_camera_on: bool = True,
        callee_camera_on: bool = False,
        time_limit_s: int | None = None,
    ) -> str:
        """Rings the user `open_id` (seed 000 doWxCloudVoipCallV2); the call id. The seed's call codes
        (-2, -7, -8, -9, -15, -17, -19, -20) and busy (-91020) come back as ProtocolError."""
        params: dict[str, Any] = {
            "open_id": open_id,
            "media": str(media),
            "caller_camera_on": caller_camera_on,
            "callee_camera_on": callee_camera_on,
            "model_id": self.model_id,
        }
        if video is not None:
            params["video"] = {"width": video.width, "height": video.height, "fps": video.fps}
        if time_limit_s is not None:
            params["time_limit_s"] = time_limit_s
        data = await self.signalling.request("call", **params)
        self.call_id, self.media, self.caller_camera_on = data["call_id"], media, caller_camera_on
        self.call_ended.clear()
        return self.call_id

    async def hang_up(self) -> None:
        """Ends the current call (seed 000 doWxCloudVoipHangUp)."""
        if self.call_id:
            await self.signalling.request("hang_up", call_id=self.call_id)

    async def is_busy(self) -> bool:
        """Whether the device is in a call, ringing or answered (seed 000 isWxCloudVoipBusyV2)."""
        return bool((await self.signalling.request("is_busy"))["busy"])

    def feed_audio(self, audio: AudioData) -> None:
        if self.session is not None:
            self.session.feed_audio(audio)
            if self.session.audio_queue_size() > self._send_buffer_warn_bytes:
                self.listener.on_notify(
                    NotifyEvent.SEND_BUFFER_HIGH, {"audio_bytes": self.session.audio_queue_size()}
                )

    def feed_video(self, video: VideoData) -> None:
        if self.session is not None:
            self.session.feed_video(video)

    def send_buffer_status(self) -> SendBufferStatus:
        """What is queued and not yet sent (seed 001 send-buffer status, for congestion control)."""
        if self.session is None:
            return SendBufferStatus(0, 0)
        return SendBufferStatus(self.session.audio_queue_size(), self.session.video_track.waiting)

    def clear_audio(self) -> None:
        if self.session is not None:
            self.session.clear_audio()

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _join_call(self, call_id: str, room_id: str, rtoken: str) -> None:
        session = Session(self._engine_param, _CallMedia(self, call_id), EngineListener())
        session.attach(self.signalling, self.sn, self.session_id, self._ice_servers)
        self.session = session
        try:
            await session.join_room(JoinRoomParam(room_id=room_id, token=rtoken))
            video = self.media is CallMedia.VIDEO and self.caller_camera_on
            self.feed_id = await session.publish(
                PublishParam(enable_video=video, enable_audio=True, tag="device")
            )
        except (ProtocolError, ConnectionError, TimeoutError) as error:
            log.warning("joining the call's room failed: %s", error)

    async def _end_media(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()

    async def _ended(self, data: dict[str, Any]) -> None:
        await self._end_media()
        self.listener.on_stop_real_play(data["call_id"])
        self.listener.on_call_end(
            data["call_id"], data.get("reason", ""), data.get("by", ""), data.get("keep_time_ms", 0)
        )
        self.call_id = ""
        self.call_ended.set()

    def _pushed(self, event: str, data: dict[str, Any]) -> None:
        if event == "on_update_authorize_status":
            self.listener.on_update_authorize_status(data["open_id"], data["status"])
        elif event == "on_call_answered":
            self.listener.on_call_answered(data["call_id"], data["room_id"])
            self._spawn(self._join_call(data["call_id"], data["room_id"], data["rtoken"]))
        elif event == "on_call_command":
            self.listener.on_recv_command(data["command"], data["call_id"])
        elif event == "on_call_end":
            self._spawn(self._ended(data))
        elif event == "on_network_weak":
            self.listener.on_notify(NotifyEvent.NETWORK_WEAK, data)
        elif self.session is not None:
            self.session.handle_push(event, data)

    # The seeds' names.
    activateVoipLicenseV2 = activate
    registerAvtVoip = register
    isAvtVoipRegistered = is_registered
    doWxCloudVoipCallV2 = call
    doWxCloudVoipHangUpV2 = hang_up
    isWxCloudVoipBusyV2 = is_busy
    getVoipUserListV2 = get_user_list
    exitWxCloudVoipV2 = close
