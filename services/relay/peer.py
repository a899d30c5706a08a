"""One WebRTC peer connection of the relay, from the client's offer until it closes, once, with a code.

A peer closes because the relay closes it (unpublish, unsubscribe, its feed stopped, shutdown), because
ICE and DTLS did not connect in time (5004), failed before connecting (5011), or because the connected
link closed or failed (5007: the client went away, or ICE consent expired). Whoever owns the peer
learns the code through `on_closed`, whichever way it closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import ModuleType

import structlog
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError

from services.relay.close_codes import CloseCode
from services.relay.errors import CODEC_UNSUPPORTED, SDP_MALFORMED
from services.relay.ice import IcePolicy
from services.relay.inbound import take_inbound_media
from services.relay.offer import Offer

log = structlog.get_logger(__name__)


class Peer:
    def __init__(
        self, ice: IcePolicy, *, connect_timeout_s: float, compiled: ModuleType | None = None
    ) -> None:
        self.pc = RTCPeerConnection(ice.configuration())
        # services.relay._fastsend where the relay uses it (SRTP unprotect), None for pylibsrtp's.
        self._compiled = compiled
        self._ice = ice
        self._connect_timeout_s = connect_timeout_s
        self._timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._connected_handlers: list[Callable[[], None]] = []
        self._closed_handlers: list[Callable[[CloseCode], None]] = []
        self.connected = False
        self.close_code: CloseCode | None = None
        self.pc.on("connectionstatechange", self._state_changed)

    def on_connected(self, handler: Callable[[], None]) -> None:
        self._connected_handlers.append(handler)

    def on_closed(self, handler: Callable[[CloseCode], None]) -> None:
        self._closed_handlers.append(handler)

    async def accept(self, offer: Offer) -> None:
        """Apply the client's offer (its candidates filtered); transceivers added before it are used."""
        description = RTCSessionDescription(sdp=self._ice.incoming(offer.sdp), type="offer")
        try:
            await self.pc.setRemoteDescription(description)
        except OperationError as error:
            # aiortc's only OperationError here: no codec in common for an m-line.
            raise CODEC_UNSUPPORTED(str(error)) from None
        except (ValueError, InternalError, InvalidAccessError, InvalidStateError) as error:
            raise SDP_MALFORMED(f"the SDP offer was refused: {error}") from None

    async def answer(self) -> str:
        """The relay's answer, with its candidates gathered; the connect timeout starts here."""
        self._ice.share_port(self.pc)
        answer = await self.pc.createAnswer()
        self._ice.refuse_outside_checks(self.pc)
        with self._ice.gathering():
            await self.pc.setLocalDescription(answer)
        self._ice.size_socket_buffers(self.pc)
        take_inbound_media(self.pc, self._compiled)
        self._timer = asyncio.get_running_loop().call_later(self._connect_timeout_s, self._timed_out)
        return self._ice.outgoing(self.pc.localDescription.sdp)

    async def close(self, code: CloseCode) -> None:
        """Close with `code` unless already closing; return once closed either way."""
        # Shielded: a caller that gives up (a cancelled RPC) must not leave the peer half closed.
        await asyncio.shield(self._begin_close(code))

    def _begin_close(self, code: CloseCode) -> asyncio.Task[None]:
        # Also called from aiortc's event emitter and from timers, which cannot await.
        if self._closing is None:
            self.close_code = code
            if self._timer is not None:
                self._timer.cancel()
            self._closing = asyncio.create_task(self._close())
        return self._closing

    async def _close(self) -> None:
        assert self.close_code is not None
        try:
            await self.pc.close()
        except Exception:
            log.exception("peer_close_failed", code=int(self.close_code))
        for handler in self._closed_handlers:
            try:
                handler(self.close_code)
            except Exception:
                log.exception("peer_close_handler_failed", code=int(self.close_code))

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.connected and self.close_code is None:
            self.connected = True
            if self._timer is not None:
                self._timer.cancel()
            for handler in self._connected_handlers:
                try:
                    handler()
                except Exception:
                    # Raised into aiortc's state machine it would break the connection it reports on.
                    log.exception("peer_connected_handler_failed")
        elif state == "failed":
            self._begin_close(CloseCode.LINK_CLOSED if self.connected else CloseCode.LINK_FAILED)
        elif state == "closed":
            self._begin_close(CloseCode.LINK_CLOSED)

    def _timed_out(self) -> None:
        if not self.connected:
            self._begin_close(CloseCode.CONNECT_TIMEOUT)
