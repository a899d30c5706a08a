"""A track's kind as the services name it ("audio", "video") and as the protos carry it (media.proto)."""

from __future__ import annotations

from parley.relay.v1 import media_pb2

from services.core.errors import INVALID_ARGUMENT

MEDIA_KIND = {"audio": media_pb2.MEDIA_KIND_AUDIO, "video": media_pb2.MEDIA_KIND_VIDEO}
KIND_NAMES = {value: name for name, value in MEDIA_KIND.items()}


def kind_name(kind: media_pb2.MediaKind.ValueType) -> str:
    """ "audio" or "video"; INVALID_ARGUMENT for another value of a request."""
    name = KIND_NAMES.get(kind)
    if name is None:
        raise INVALID_ARGUMENT("kind is MEDIA_KIND_AUDIO or MEDIA_KIND_VIDEO")
    return name
