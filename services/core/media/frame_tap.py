"""Encoded frames out of an aiortc `RTCRtpReceiver`, before anything decodes them.

The receiver does everything a forwarding relay wants from it (SRTP, RTX unwrapping, NACKs and PLIs
upstream, RTCP receiver reports, a jitter buffer that reassembles frames) and then puts each complete
frame, as `(codec, JitterFrame)`, on `__decoder_queue` for a decoder thread it starts in `receive()`.
An `EncodedFrameTap` takes that queue's place:

- `put` hands each frame to the relay on the event loop, where `_handle_rtp_packet` runs, and turns the
  `None` the receiver puts there when it stops (BYE, disconnect, close) into the end of the track;
- `get` answers the decoder thread's first read with `None`, its "stop" value, so the thread ends at once
  without creating a decoder. The receiver only checks that the thread object was created, so frames keep
  coming to `put`.

The receiver's jitter buffer is replaced too: video by `MarkerJitterBuffer` (a frame leaves on its marker
packet, not one frame interval later), audio by the stock buffer without playout prefetch.

Two private attributes of aiortc 1.16 are involved, named here and checked by
tests/unit/relay/test_frame_tap.py so an aiortc upgrade that renames them fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from services.core.media.jitter_buffer import MarkerJitterBuffer

log = structlog.get_logger(__name__)

DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"

FrameHandler = Callable[[RTCRtpCodecParameters, JitterFrame], None]


class EncodedFrameTap:
    """Stands in for one receiver's decoder queue (see the module docstring)."""

    def __init__(self, on_frame: FrameHandler, on_end: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_end = on_end
        self._ended = False

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if self._ended:
            return
        if item is None:
            self._ended = True
            self._on_end()
            return
        try:
            self._on_frame(*item)
        except Exception:
            # An exception here would unwind into aiortc's receive loop and end the whole transport; one
            # bad frame must cost at most that frame.
            log.exception("frame_forwarding_failed")

    def get(self) -> None:
        return None


def tap_receiver(receiver: RTCRtpReceiver, kind: str, tap: EncodedFrameTap) -> None:
    """Send `receiver`'s encoded frames to `tap`; call before the peer connection connects."""
    if kind == "audio":
        # aiortc holds 4 audio frames (80 ms) back before decoding to smooth playout; subscribers' own
        # receivers do that, so the relay forwards each frame as soon as the next packet confirms it.
        setattr(receiver, JITTER_BUFFER, JitterBuffer(capacity=16, prefetch=0))
    else:
        # The stock video buffer waits for the next frame's first packet (one frame interval) before it
        # hands a frame over; this one releases it on its marker packet (see jitter_buffer.py).
        setattr(receiver, JITTER_BUFFER, MarkerJitterBuffer())
    setattr(receiver, DECODER_QUEUE, tap)
