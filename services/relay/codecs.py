"""The codecs the relay forwards and how each published and subscribed track gets exactly one.

A feed keeps the codec it was published with: the relay never transcodes, so every subscriber must
receive that codec. The publisher's answer therefore names a single codec per track (the publisher's
first offered choice among those the relay forwards), and a subscriber's answer names that same codec.
Both go through `RTCRtpTransceiver.setCodecPreferences` so aiortc's own negotiation does the rest
(payload types, RTCP feedback, RTX pairing).
"""

from __future__ import annotations

from aiortc.codecs import CODECS, get_capabilities
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

from services.relay.errors import CODEC_UNSUPPORTED
from services.relay.offer import OfferedMedia

# G.722 is in aiortc but in no Parley client; the relay forwards what the platform promises.
FORWARDED = {
    "audio": ("audio/opus", "audio/pcmu", "audio/pcma"),
    "video": ("video/vp8", "video/h264"),
}


def _is_rtx(codec: RTCRtpCodecParameters | RTCRtpCodecCapability) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def _local_match(kind: str, offered: RTCRtpCodecParameters) -> RTCRtpCodecParameters | None:
    if offered.mimeType.lower() not in FORWARDED[kind]:
        return None
    return next((local for local in CODECS[kind] if is_codec_compatible(local, offered)), None)


def choose_published_codec(media: OfferedMedia) -> RTCRtpCodecParameters:
    """The relay's codec for a published m-line: the publisher's first offered one the relay forwards."""
    for offered in media.codecs:
        local = _local_match(media.kind, offered)
        if local is not None:
            return local
    names = ", ".join(dict.fromkeys(codec.mimeType for codec in media.codecs if not _is_rtx(codec)))
    raise CODEC_UNSUPPORTED(
        f"{media.kind} offers {names or 'no codec'}; the relay forwards {', '.join(FORWARDED[media.kind])}"
    )


def accepts(media: OfferedMedia, codec: RTCRtpCodecParameters) -> bool:
    """Whether a subscriber's m-line can receive `codec`."""
    return any(is_codec_compatible(codec, offered) for offered in media.codecs)


def preferences(codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """`codec` alone, with RTX for video so lost packets can be retransmitted."""
    kind = codec.mimeType.split("/")[0]
    return [
        capability
        for capability in get_capabilities(kind).codecs
        if _is_rtx(capability)
        or (capability.mimeType == codec.mimeType and capability.parameters == codec.parameters)
    ]
