"""The room API of the seed's Linux server SDK (seed 002 sections 3.4 and 6.4: MRTCEngine, MRTCSession,
their listeners and event codes) over protocol v1 and aiortc.

Every seed name is kept beside a Python one (`FeedAudio` is `feed_audio`). The seed's calls are
asynchronous with results in `OnSessionEvent`; here the room calls are coroutines that return their
result (or raise `ProtocolError`) and ALSO report it to the listener as the seed's `RtcEvent`, so code
ported from C++ that waits for events keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_APP, RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket, unpack_remb_fci

from parley_sdk.ice import only_hosts
from parley_sdk.media import (
    AudioData,
    AudioFormat,
    PcmQueueTrack,
    VideoCodec,
    VideoData,
    VideoFeedTrack,
    read_audio,
    read_video,
)
from parley_sdk.signalling import ProtocolError, Signalling

log = logging.getLogger(__name__)

VERSION = "0.1.0"


class EventType(IntEnum):
    """Seed 002 6.4.2 EventType, in the seed's order (INIT = 0)."""

    INIT = 0
    WSS_LINK = 1
    CREATE_ROOM = 2
    JOIN_ROOM = 3
    PUBLISH = 4
    SUBSCRIBE = 5
    EXIT_ROOM = 6
    ICE_LINK = 7
    START_RECORD = 8


# Seed 002 6.4.6: 0 success, -1 for INIT / WSS_LINK failures; the room calls carry the server's code.
OK = 0
FAILED = -1


class EngineType(IntEnum):
    """Seed 002 EngineType / protocol v1 `engine`."""

    ENGINE_ALIPAY = 0  # media through Parley's relay (SFU)
    ENGINE_P2P = 2


@dataclass(frozen=True)
class RtcEvent:
    """Seed 002 RtcEvent: `code` < 0 is an error; `ext` depends on the type (a feed id for PUBLISH,
    SUBSCRIBE and ICE_LINK, the room id for CREATE_ROOM / JOIN_ROOM, the record id for START_RECORD)."""

    uid: str
    type: EventType
    code: int
    ext: str = ""


@dataclass(frozen=True)
class StreamInfo:
    """A feed of the room (seed StreamInfo): `stream_id` is the protocol's `feed_id`."""

    stream_id: str
    uid: str
    tag: str = ""
    media_type: int = 1  # 1 audio and video, 2 audio, 3 video (protocol v1 publish)
    subscriber: str = ""


@dataclass(frozen=True)
class UserInfo:
    uid: str


@dataclass(frozen=True)
class EncoderQosParams:
    """Seed 002 MRtcEncoderQosParams."""

    target_kbps: int
    target_fps: int


@dataclass(frozen=True)
class TextData:
    uid: str
    text: str
    msg_id: str


@dataclass(frozen=True)
class EngineInitParam:
    """Seed 002 MRtcEngineInitParam. `room_url` is the gateway's `ws://host:port/ws/v1`; `ice_hosts`
    (Parley's) limits the local addresses offered to the relay, e.g. `["127.0.0.1"]` on one machine."""

    room_url: str
    video_codec: VideoCodec = VideoCodec.VIDEO_CODEC_YUV420P
    audio_format: AudioFormat = field(default_factory=AudioFormat)
    log_level: str = "info"
    max_session_num: int = 20
    ice_hosts: tuple[str, ...] | None = None
    video_fps: int = 15


@dataclass(frozen=True)
class CreateRoomParam:
    """Seed 002 CreatRoomParam; `ext` carries the recording options (protocol v1 `create_room.ext`)."""

    uid: str
    sign: str
    biz_name: str
    sub_biz: str
    workspace_id: str
    auto_subscribe: bool = True
    engine: EngineType = EngineType.ENGINE_ALIPAY
    ext: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JoinRoomParam:
    """Seed 002 JoinRoomParam (`token` is the room's rtoken)."""

    room_id: str
    token: str
    uid: str = ""
    sign: str = ""
    biz_name: str = ""
    sub_biz: str = ""
    workspace_id: str = ""
    auto_subscribe: bool = True
    engine: EngineType | None = None


@dataclass(frozen=True)
class PublishParam:
    """Seed 002 PublishParam (the seed's defaults: audio on, video off)."""

    enable_video: bool = False
    enable_audio: bool = True
    tag: str = ""


@dataclass(frozen=True)
class SubscribeParam:
    """Seed 002 SubscribeParam."""

    stream_id: str
    enable_video: bool = False
    enable_audio: bool = True


class EngineListener:
    """Seed 002 MRtcEngineListener. Override `on_engine_event` or `OnEngineEvent`."""

    def on_engine_event(self, event: RtcEvent) -> None:
        self.OnEngineEvent(event)

    def OnEngineEvent(self, event: RtcEvent) -> None:
        pass


class SessionListener:
    """Seed 002 MRtcSessionListener. Each callback exists under the seed's name and a Python one; the SDK
    calls the Python one, whose default calls the seed's: override whichever you like."""

    def on_session_event(self, event: RtcEvent) -> None:
        self.OnSessionEvent(event)

    def on_new_publisher(self, info: StreamInfo) -> None:
        self.OnNewPublisher(info)

    def on_stream_gone(self, info: StreamInfo) -> None:
        self.OnStreamGone(info)

    def on_new_subscriber(self, info: StreamInfo) -> None:
        self.OnNewSubscriber(info)

    def on_audio(self, audio: AudioData, stream_id: str) -> None:
        self.OnAudio(audio, stream_id)

    def on_video(self, video: VideoData, stream_id: str) -> None:
        self.OnVideo(video, stream_id)

    def on_text(self, text: TextData) -> None:
        self.OnText(text)

    def on_key_frame_request(self) -> None:
        self.OnKeyFrameRequest()

    def on_encoder_qos_request(self, params: EncoderQosParams) -> None:
        self.OnEncoderQosRequest(params)

    def on_new_joiner(self, user: UserInfo) -> None:
        self.OnNewJoiner(user)

    def on_push(self, event: str, data: dict[str, Any]) -> None:
        """Every protocol push of the session's connection, as it came (Parley's addition)."""

    def on_call_incoming(self, call: dict[str, Any]) -> None:
        """A device calls this user (protocol v1 on_call_incoming: call_id, sn, media, ...); answer with
        `Session.answer_call`. Parley's addition, for users connected through the SDK."""

    def on_call_end(self, call: dict[str, Any]) -> None:
        """A call of this user ended (protocol v1 on_call_end: call_id, reason, by, keep_time_ms)."""

    def OnSessionEvent(self, event: RtcEvent) -> None:
        pass

    def OnNewPublisher(self, info: StreamInfo) -> None:
        pass

    def OnStreamGone(self, info: StreamInfo) -> None:
        pass

    def OnNewSubscriber(self, info: StreamInfo) -> None:
        pass

    def OnAudio(self, audio: AudioData, stream_id: str) -> None:
        pass

    def OnVideo(self, video: VideoData, stream_id: str) -> None:
        pass

    def OnText(self, text: TextData) -> None:
        pass

    def OnKeyFrameRequest(self) -> None:
        pass

    def OnEncoderQosRequest(self, params: EncoderQosParams) -> None:
        pass

    def OnNewJoiner(self, user: UserInfo) -> None:
        pass


class Engine:
    """Seed 002 MRTCEngine: creates sessions sharing one configuration."""

    def __init__(self, listener: EngineListener | None = None) -> None:
        self._listener = listener or EngineListener()
        self.param: EngineInitParam | None = None
        self._sessions: list[Session] = []

    @classmethod
    def create(cls, listener: EngineListener | None = None) -> Engine:
        return cls(listener)

    Create = create

    def init(self, param: EngineInitParam) -> int:
        if not param.room_url.startswith(("ws://", "wss://")):
            self._listener.on_engine_event(
                RtcEvent("", EventType.INIT, FAILED, "room_url is not ws:// or wss://")
            )
            return FAILED
        self.param = param
        self._listener.on_engine_event(RtcEvent("", EventType.INIT, OK))
        return OK

    def create_session(self, listener: SessionListener | None = None) -> Session:
        if self.param is None:
            raise RuntimeError("init the engine first")
        if len(self._sessions) >= self.param.max_session_num > 0:
            raise RuntimeError(f"at most {self.param.max_session_num} sessions (maxSessionNum)")
        session = Session(self.param, listener or SessionListener(), self._listener)
        self._sessions.append(session)
        return session

    async def destroy_session(self, session: Session) -> None:
        await session.close()
        if session in self._sessions:
            self._sessions.remove(session)

    async def destroy(self) -> None:
        for session in list(self._sessions):
            await self.destroy_session(session)

    def get_version(self) -> str:
        return VERSION

    Init = init
    CreateSession = create_session
    DestroySession = destroy_session
    Destroy = destroy
    GetVersion = get_version


@dataclass
class _Stream:
    pc: RTCPeerConnection
    feed_id: str
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Session:
    """Seed 002 MRTCSession: one call in one room. A session either connects as a user on its first
    `create_room` / `join_room` (with the uid and sign of the param) or is given a connection that is
    already connected (`attach`, how a Device joins its call's room)."""

    def __init__(
        self, param: EngineInitParam, listener: SessionListener, engine_listener: EngineListener
    ) -> None:
        self._param = param
        self._listener = listener
        self._engine_listener = engine_listener
        self._signalling: Signalling | None = None
        self._owns_signalling = False
        self.uid = ""
        self.session_id = ""
        self.room_id = ""
        self.rtoken = ""
        self.record_id = ""
        self.auto_subscribe = True
        self.ice_servers: list[RTCIceServer] = []
        self._publication: _Stream | None = None
        self._subscriptions: dict[str, _Stream] = {}
        self._feeds: dict[str, StreamInfo] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Closes of streams whose feed went: `close` waits for these rather than cancelling them.
        self._stream_closes: set[asyncio.Task[None]] = set()
        self.audio_track = PcmQueueTrack(param.audio_format)
        self.video_track = VideoFeedTrack(param.video_codec)

    # --- connection ---

    def attach(
        self, signalling: Signalling, uid: str, session_id: str, ice_servers: list[dict[str, Any]]
    ) -> None:
        """Use a connection that is connected already (its pushes must be passed to `handle_push`)."""
        self._signalling, self._owns_signalling = signalling, False
        self.uid, self.session_id = uid, session_id
        self.ice_servers = [RTCIceServer(**server) for server in ice_servers]

    async def connect(
        self, uid: str, sign: str, biz_name: str, sub_biz: str, workspace_id: str
    ) -> Signalling:
        """Connects as a user (protocol v1 user connect); `create_room` / `join_room` do it when needed."""
        if self._signalling is not None:
            return self._signalling
        try:
            signalling = await Signalling.open(self._param.room_url, self.handle_push)
            data = await signalling.request(
                "connect", uid=uid, biz_name=biz_name, sub_biz=sub_biz, workspace_id=workspace_id, sign=sign
            )
        except (OSError, ProtocolError) as error:
            self._engine_listener.on_engine_event(RtcEvent(uid, EventType.WSS_LINK, FAILED, str(error)))
            raise
        self._engine_listener.on_engine_event(RtcEvent(uid, EventType.WSS_LINK, OK))
        self.attach(signalling, uid, data["session_id"], data.get("ice_servers", []))
        self._owns_signalling = True
        return signalling

    @property
    def signalling(self) -> Signalling:
        if self._signalling is None:
            raise RuntimeError("create or join a room first")
        return self._signalling

    async def _reported(
        self, kind: EventType, call: Coroutine[Any, Any, dict[str, Any]], ext_key: str
    ) -> dict[str, Any]:
        """Run one room call and report it as the seed's RtcEvent, success or failure."""
        try:
            data = await call
        except ProtocolError as error:
            self._listener.on_session_event(RtcEvent(self.uid, kind, error.code, error.reason))
            raise
        self._listener.on_session_event(RtcEvent(self.uid, kind, OK, str(data.get(ext_key, ""))))
        return data

    # --- rooms ---

    async def create_room(self, param: CreateRoomParam) -> str:
        """Creates a room; the room id (its rtoken is `self.rtoken`)."""
        signalling = await self.connect(
            param.uid, param.sign, param.biz_name, param.sub_biz, param.workspace_id
        )
        self.auto_subscribe = param.auto_subscribe
        data = await self._reported(
            EventType.CREATE_ROOM,
            signalling.request("create_room", ext=param.ext, engine=int(param.engine)),
            "room_id",
        )
        self.room_id, self.rtoken, self.record_id = data["room_id"], data["rtoken"], data.get("record_id", "")
        return self.room_id

    async def join_room(self, param: JoinRoomParam) -> str:
        if self._signalling is None:
            await self.connect(param.uid, param.sign, param.biz_name, param.sub_biz, param.workspace_id)
        self.auto_subscribe = param.auto_subscribe
        params: dict[str, Any] = {"room_id": param.room_id, "rtoken": param.token}
        if param.engine is not None:
            params["engine"] = int(param.engine)
        data = await self._reported(
            EventType.JOIN_ROOM, self.signalling.request("join_room", **params), "room_id"
        )
        self.room_id, self.rtoken = data["room_id"], param.token
        return self.room_id

    async def leave_room(self) -> None:
        await self._close_streams()
        try:
            await self.signalling.request("leave_room")
        except ProtocolError as error:
            self._listener.on_session_event(RtcEvent(self.uid, EventType.EXIT_ROOM, error.code, error.reason))
            raise
        finally:
            self.room_id = ""
            self._feeds.clear()
        self._listener.on_session_event(RtcEvent(self.uid, EventType.EXIT_ROOM, OK))

    async def send_text(self, text: str, peers: list[str] | None = None) -> str:
        return str((await self.signalling.request("send_text", text=text, peers=peers or []))["msg_id"])

    async def start_record(self, **options: Any) -> str:
        """Starts cloud recording of the room (protocol v1 `start_record`); the record id."""
        data = await self._reported(
            EventType.START_RECORD,
            self.signalling.request("start_record", room_id=self.room_id, **options),
            "record_id",
        )
        return str(data["record_id"])

    def get_session_id(self) -> str:
        return self.session_id

    # --- calls from devices (protocol v1 "Calls"; Parley's addition to the seed's server SDK) ---

    async def answer_call(self, call_id: str, *, auto_subscribe: bool = True) -> str:
        """Answers a ringing call and joins its room; the room id. Publish to send media back."""
        data = await self.signalling.request("answer_call", call_id=call_id)
        return await self.join_room(
            JoinRoomParam(data["room_id"], data["rtoken"], auto_subscribe=auto_subscribe)
        )

    async def reject_call(self, call_id: str) -> None:
        await self.signalling.request("reject_call", call_id=call_id)

    async def hang_up(self, call_id: str) -> None:
        await self.signalling.request("hang_up", call_id=call_id)

    # --- media ---

    def _peer_connection(self) -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers))

    async def _offer(self, pc: RTCPeerConnection) -> str:
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)

    def _watch_ice(self, pc: RTCPeerConnection, feed_id: Callable[[], str]) -> None:
        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc.connectionState == "connected":
                self._listener.on_session_event(RtcEvent(self.uid, EventType.ICE_LINK, OK, feed_id()))
            elif pc.connectionState == "failed":
                self._listener.on_session_event(RtcEvent(self.uid, EventType.ICE_LINK, FAILED, feed_id()))

    async def publish(self, param: PublishParam) -> str:
        """Publishes what `feed_audio` / `feed_video` are given; the feed id (seed streamId)."""
        if not (param.enable_audio or param.enable_video):
            raise ValueError("publish audio, video or both")
        pc = self._peer_connection()
        stream = _Stream(pc, "")
        self._watch_ice(pc, lambda: stream.feed_id)
        if param.enable_audio:
            pc.addTransceiver(self.audio_track, direction="sendonly")
        if param.enable_video:
            video = pc.addTransceiver(self.video_track, direction="sendonly")
            if self._param.video_codec is VideoCodec.VIDEO_CODEC_H264:
                codecs = RTCRtpSender.getCapabilities("video").codecs
                video.setCodecPreferences([codec for codec in codecs if codec.mimeType == "video/H264"])
            self._hook_feedback(video.sender)
        media_type = 1 if param.enable_audio and param.enable_video else 2 if param.enable_audio else 3
        try:
            with only_hosts(self._param.ice_hosts):
                offer = await self._offer(pc)
            data = await self._reported(
                EventType.PUBLISH,
                self.signalling.request("publish", media_type=media_type, tag=param.tag, sdp=offer),
                "feed_id",
            )
            await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "answer"))
        except BaseException:
            await pc.close()
            raise
        stream.feed_id = data["feed_id"]
        self._publication = stream
        return stream.feed_id

    def _hook_feedback(self, sender: RTCRtpSender) -> None:
        """The relay's key-frame requests (PLI, FIR) and bitrate estimates (REMB) reach the listener as
        OnKeyFrameRequest / OnEncoderQosRequest, before aiortc's own handling (which re-encodes raw frames
        but cannot touch an H.264 stream it only packetizes)."""
        stock = sender._handle_rtcp_packet

        async def handle(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                self._listener.on_key_frame_request()
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                with contextlib.suppress(ValueError):
                    bitrate, _ = unpack_remb_fci(packet.fci)
                    self._listener.on_encoder_qos_request(
                        EncoderQosParams(bitrate // 1000, self._param.video_fps)
                    )
            await stock(packet)

        sender._handle_rtcp_packet = handle  # type: ignore[method-assign]

    async def subscribe(self, param: SubscribeParam) -> str:
        """Subscribes to a feed; its audio reaches `on_audio` as PCM, its video `on_video` as I420."""
        pc = self._peer_connection()
        stream = _Stream(pc, param.stream_id)
        self._watch_ice(pc, lambda: stream.feed_id)
        if param.enable_audio:
            pc.addTransceiver("audio", direction="recvonly")
        if param.enable_video:
            pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def arrived(track: Any) -> None:
            if track.kind == "audio":
                reader = read_audio(
                    track,
                    self._param.audio_format,
                    lambda audio: self._listener.on_audio(audio, param.stream_id),
                )
            else:
                reader = read_video(track, lambda video: self._listener.on_video(video, param.stream_id))
            stream.tasks.append(asyncio.create_task(reader))

        try:
            with only_hosts(self._param.ice_hosts):
                offer = await self._offer(pc)
            data = await self._reported(
                EventType.SUBSCRIBE,
                self.signalling.request(
                    "subscribe",
                    feed_id=param.stream_id,
                    audio=param.enable_audio,
                    video=param.enable_video,
                    sdp=offer,
                ),
                "feed_id",
            )
            await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "answer"))
        except BaseException:
            await pc.close()
            raise
        self._subscriptions[param.stream_id] = stream
        return str(data["subscription_id"])

    def feed_audio(self, audio: AudioData) -> None:
        """Queues PCM in the engine's format; it is sent 10 ms at a time."""
        self.audio_track.feed(audio.data)

    def feed_video(self, video: VideoData) -> None:
        self.video_track.feed(video)

    def clear_audio(self) -> None:
        """Drops all queued audio at once (seed 002 6.4.5: "实现打断机器人说话的功能", barge-in)."""
        self.audio_track.clear()

    def audio_queue_size(self) -> int:
        """Bytes of PCM queued and not sent yet."""
        return self.audio_track.queued_bytes

    # --- pushes ---

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _feed(self, feed: dict[str, Any], subscriber: str = "") -> StreamInfo:
        return StreamInfo(
            feed["feed_id"], feed["uid"], feed.get("tag", ""), feed.get("media_type", 1), subscriber
        )

    def _offered(self, info: StreamInfo) -> None:
        self._feeds[info.stream_id] = info
        self._listener.on_new_publisher(info)
        if self.auto_subscribe:
            param = SubscribeParam(
                info.stream_id, enable_video=info.media_type != 2, enable_audio=info.media_type != 3
            )
            self._spawn(self._quietly(self.subscribe(param)))

    @staticmethod
    async def _quietly(call: Coroutine[Any, Any, Any]) -> None:
        """A background call whose failure the listener has heard of already (as an RtcEvent)."""
        with contextlib.suppress(ProtocolError, ConnectionError, TimeoutError):
            await call

    def _gone(self, feed_id: str) -> None:
        info = self._feeds.pop(feed_id, None)
        stream = self._subscriptions.pop(feed_id, None)
        if stream is not None:
            closing = asyncio.create_task(self._close_stream(stream))
            self._stream_closes.add(closing)
            closing.add_done_callback(self._stream_closes.discard)
        if info is not None:
            self._listener.on_stream_gone(info)

    def handle_push(self, event: str, data: dict[str, Any]) -> None:
        self._listener.on_push(event, data)
        if event == "on_room_attendance_list":
            for participant in data["participants"]:
                for feed in participant.get("publish", []):
                    self._offered(self._feed({**feed, "uid": participant["uid"]}))
        elif event == "on_new_publish":
            self._offered(self._feed(data["feed"]))
        elif event == "on_unpublish":
            self._gone(data["feed"]["feed_id"])
        elif event == "on_participant_leave_room":
            for feed_id, info in list(self._feeds.items()):
                if info.uid == data["participant"]:
                    self._gone(feed_id)
        elif event == "on_media_close" and data.get("subscription_id"):
            self._gone(data["feed_id"])
        elif event == "on_new_subscribe":
            self._listener.on_new_subscriber(self._feed(data["feed"], data["subscriber"]))
        elif event == "on_new_joiner_in":
            self._listener.on_new_joiner(UserInfo(data["participant"]))
        elif event == "on_call_incoming":
            self._listener.on_call_incoming(data)
        elif event == "on_call_end":
            self._listener.on_call_end(data)
        elif event == "on_receive_text_msg":
            self._listener.on_text(TextData(data["uid"], data["text"], data["msg_id"]))

    # --- ending ---

    @staticmethod
    async def _close_stream(stream: _Stream) -> None:
        await stream.pc.close()
        for task in stream.tasks:
            task.cancel()

    async def _close_streams(self) -> None:
        # A push handled while a stream closes (a feed gone) may drop other streams meanwhile, so
        # each stream is taken out before it is closed rather than iterated in place.
        publication, self._publication = self._publication, None
        if publication is not None:
            await self._close_stream(publication)
        while self._subscriptions:
            _, stream = self._subscriptions.popitem()
            await self._close_stream(stream)

    async def close(self) -> None:
        """Ends the session's media and, if it opened it, its connection."""
        await self._close_streams()
        await asyncio.gather(*self._stream_closes)
        for task in list(self._tasks):
            task.cancel()
        if self._owns_signalling and self._signalling is not None:
            await self._signalling.close()
        self._signalling = None

    CreateRoom = create_room
    JoinRoom = join_room
    Publish = publish
    Subscribe = subscribe
    FeedAudio = feed_audio
    FeedVideo = feed_video
    SendText = send_text
    LeaveRoom = leave_room
    GetSessionId = get_session_id
    ClearAudio = clear_audio
    AudioQueueSize = audio_queue_size
    StartRecord = start_record
