"""Watching aiortc create decoders and encoders in this process, so that a test can tell a service that
forwards or records media without transcoding from one that decodes it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Protocol

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc import RTCPeerConnection


class CodecCreations(Protocol):
    """Told of each codec aiortc creates, with the frame of its caller (to tell whose it is)."""

    def decoder_created(self, codec: Any, caller: Any) -> None: ...

    def encoder_created(self, codec: Any, caller: Any) -> None: ...


@contextmanager
def codecs_watched(
    service_module: ModuleType, service_peers: list[RTCPeerConnection], creations: CodecCreations
) -> Iterator[None]:
    """While open: every RTCPeerConnection `service_module` makes is appended to `service_peers`, and every
    decoder (a receiver's `get_decoder`) and encoder (a sender's `get_encoder`) aiortc creates is told to
    `creations`."""
    real_decoder, real_encoder = aiortc.rtcrtpreceiver.get_decoder, aiortc.rtcrtpsender.get_encoder

    class ServicePeerConnection(RTCPeerConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            service_peers.append(self)

    def get_decoder(codec: Any) -> Any:
        creations.decoder_created(codec, sys._getframe(1))
        return real_decoder(codec)

    def get_encoder(codec: Any) -> Any:
        creations.encoder_created(codec, sys._getframe(1))
        return real_encoder(codec)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service_module, "RTCPeerConnection", ServicePeerConnection)
        patch.setattr(aiortc.rtcrtpreceiver, "get_decoder", get_decoder)
        patch.setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)
        yield
