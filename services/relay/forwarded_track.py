"""One published track as one subscriber receives it: encoded frames waiting for that subscriber's sender.

Video starts at a key frame: frames before it could not be decoded, and a decoder fed them reports
errors and asks for a key frame anyway. A subscriber whose sender falls a full queue behind (a slow
socket, a busy loop) loses its backlog rather than the relay buffering without bound: audio drops its
oldest frame, video drops everything queued and waits for the next key frame, which it asks for.

A frame normally leaves at once: once its sender runs, the sender is the track's `sink`, and `push`
hands it each frame while nothing is queued, inside the publisher's fan-out, with no task wake-up per
frame per subscriber. The queue holds frames only before the sender starts (and after it failed), and
its end marker ends the sender's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.packet import Packet
from parley.relay.v1 import media_pb2

from services.relay.metering import StreamMeter

# A frame and its RTP payloads when the feed packetized it for all its subscribers (None: not packetized),
# their bytes, and the wall clock (NTP) of the feed's fan-out, read once for all its subscribers (None:
# the sender reads it as it sends).
Frame = tuple[Packet, list[bytes] | None, int, int | None]
FrameSink = Callable[[Packet, list[bytes] | None, int, int | None], None]

# About a second of media at 30 frames/s (video) or 20 ms frames (audio).
QUEUE_FRAMES = {"audio": 50, "video": 30}


class FrameSource(Protocol):
    """What a subscriber's track needs from the published track it forwards."""

    @property
    def tier(self) -> media_pb2.ResolutionTier.ValueType: ...

    def request_keyframe(self) -> None: ...

    def decodable_alone(self, keyframe: Packet) -> Packet: ...


class ForwardedTrack(MediaStreamTrack):
    def __init__(self, kind: str, source: FrameSource, meter: StreamMeter) -> None:
        super().__init__()
        self.kind = kind
        self._source = source
        self.meter = meter
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue(maxsize=QUEUE_FRAMES[kind])
        # Takes each frame as it is pushed while nothing is queued (the running sender).
        self.sink: FrameSink | None = None
        self._awaiting_keyframe = True
        self._finished = False
        # The subscriber muted this kind (muteRemoteAudio / muteRemoteVideo): nothing is queued.
        self.paused = False
        self.frames_forwarded = 0
        self.bytes_forwarded = 0
        self.frames_dropped = 0

    def push(
        self, packet: Packet, payloads: list[bytes] | None = None, octets: int = 0, ntp: int | None = None
    ) -> None:
        """A frame from the publisher, with its RTP payloads and their bytes when the feed made them and
        the fan-out's clock; called on the media path, never waits."""
        if self._finished or self.paused:
            return
        if self._queue.full():
            self._fall_behind()
        if self._awaiting_keyframe:
            # Audio packets are all marked as key frames: each one decodes alone.
            if not packet.is_keyframe:
                self.frames_dropped += 1
                return
            self._awaiting_keyframe = False
            completed = self._source.decodable_alone(packet)
            if completed is not packet:
                packet, payloads, octets = completed, None, 0
        if self.sink is not None and self._queue.empty():
            self._count(packet)
            self.sink(packet, payloads, octets, ntp)
            return
        # A queued frame is sent later: its sender reads the clock then.
        self._queue.put_nowait((packet, payloads, octets, None))

    def set_paused(self, paused: bool) -> None:
        """Stop forwarding at once (what is queued is dropped), or resume, video at a key frame."""
        if paused == self.paused or self._finished:
            return
        self.paused = paused
        if paused:
            self._drop_queued()
        else:
            self.restart()
            self._source.request_keyframe()

    def restart(self) -> None:
        """Forwarding resumes after a gap: video waits for a key frame (the subscriber's decoder could not
        use what follows the gap without one); the caller asks the publisher for it."""
        if self.kind == "video":
            self._awaiting_keyframe = True

    def finish(self) -> None:
        """No more frames: the sender's next `recv` ends the track, after what is queued."""
        if self._finished:
            return
        self._finished = True
        if self._queue.full():
            self._queue.get_nowait()
            self.frames_dropped += 1
        self._queue.put_nowait(None)

    def request_keyframe(self) -> None:
        self._source.request_keyframe()

    async def recv(self) -> Packet:
        return (await self.next_frame())[0]

    async def next_frame(self) -> Frame:
        """The next queued frame with its payloads and their bytes, if the feed packetized it."""
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        self._count(frame[0])
        return frame

    def _count(self, packet: Packet) -> None:
        self.frames_forwarded += 1
        self.bytes_forwarded += packet.size
        self.meter.add(packet.size, self._source.tier)

    def _fall_behind(self) -> None:
        if self.kind == "audio":
            self._queue.get_nowait()
            self.frames_dropped += 1
            return
        self._drop_queued()
        self._awaiting_keyframe = True
        self._source.request_keyframe()

    def _drop_queued(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self.frames_dropped += 1
