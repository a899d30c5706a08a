"""The last steps of every subscriber's packets: SRTP protect, then the socket.

A frame's packets to a subscriber are protected together and handed to an `Outbox`, which the feed holds
for the length of its fan-out: the datagrams of one frame to all its subscribers are then written per
socket with one `sendmmsg(2)` call (one per subscriber with a port per peer connection; one for all of
them on the relay's one UDP port) instead of one `sendto` per packet through the event loop's transport.

Both steps have two implementations with the same behaviour:

- compiled (`services/relay/_fastsend.c`, built by `pip install` where a C compiler is found; why it
  exists: docs/decisions.md): libsrtp's `srtp_protect` called from C on the session pylibsrtp holds, and
  `sendmmsg` on the transport's socket;
- Python, where the module was not built (the container image has no compiler) or the setting
  `PARLEY_RELAY__COMPILED_SEND` is off (tests run both): pylibsrtp's `Session.protect` per packet and the
  transport's `sendto` per datagram.

Whatever `sendmmsg` does not take (a full socket buffer, an error) goes through the transport's `sendto`,
which queues it or reports the error as it would have; so does everything for a transport that is closing
(its socket may already be gone) or has datagrams queued already (they leave first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import structlog
from pylibsrtp import Session

from services.relay.udp_mux import socket_transport

log = structlog.get_logger(__name__)
Address = tuple[str, int]
Protect = Callable[[list[bytes]], list[bytes]]

# The C type of the libsrtp function the compiled protect calls (libsrtp 2's), as pylibsrtp's binding
# declares it; another one (a libsrtp 3 build) leaves protecting to pylibsrtp.
SRTP_PROTECT_TYPE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"


def _compiled() -> ModuleType | None:
    try:
        from services.relay import _fastsend
    except ImportError:
        # Not built: installed without a C compiler.
        return None
    return _fastsend


COMPILED = _compiled()


def _srtp_protect_address() -> int | None:
    """libsrtp's `srtp_protect` as an address, if pylibsrtp's binding has the expected one."""
    from pylibsrtp._binding import ffi, lib

    if ffi.typeof(lib.srtp_protect).cname != SRTP_PROTECT_TYPE:
        return None
    return int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))


_SRTP_PROTECT = _srtp_protect_address() if COMPILED is not None else None


@dataclass(eq=False)
class Route:
    """Where one subscriber's datagrams go: a transport's socket and an address on it."""

    transport: asyncio.DatagramTransport
    address: Address
    fd: int = -1
    sockaddr: bytes = b""


@dataclass(eq=False)
class _Batch:
    route: Route
    datagrams: list[bytes] = field(default_factory=list)
    sockaddrs: list[bytes] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)


class Outbox:
    """One relay's way out for its subscribers' RTP: `compiled` None sends it all from Python."""

    def __init__(self, compiled: ModuleType | None = COMPILED) -> None:
        self._compiled = compiled
        self._holding = False
        # By transport, not by socket number: a closed transport's number may belong to a new socket.
        self._batches: dict[asyncio.DatagramTransport, _Batch] = {}

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def protector(self, session: Session) -> Protect:
        """A function that protects a list of RTP packets with `session` (whoever calls it keeps
        `session`: the compiled one holds only its address)."""
        if self._compiled is not None and _SRTP_PROTECT is not None:
            from pylibsrtp._binding import ffi

            address = int(ffi.cast("uintptr_t", session._srtp[0]))
            protect_all: Callable[[int, int, list[bytes]], list[bytes]] = self._compiled.protect
            return lambda packets: protect_all(_SRTP_PROTECT, address, packets)
        protect = session.protect
        return lambda packets: [protect(packet) for packet in packets]

    def route(self, transport: asyncio.DatagramTransport, address: Address) -> Route:
        """The route to `address` through `transport` (an ICE pair's), batched on the socket underneath
        when the module is built, that socket is known and the address is an IP literal."""
        route = Route(transport, address)
        if self._compiled is None:
            return route
        sending: Any = socket_transport(transport)
        sock: Any = sending.get_extra_info("socket")
        if sock is None:
            return route
        try:
            sockaddr = self._compiled.sockaddr(address[0], address[1])
        except ValueError:
            return route
        return Route(sending, address, sock.fileno(), sockaddr)

    def hold(self) -> None:
        """Keep what is sent from now until `flush`: one fan-out's datagrams."""
        self._holding = True

    def send(self, route: Route, datagrams: list[bytes]) -> None:
        if route.fd < 0:
            sendto = route.transport.sendto
            address = route.address
            for datagram in datagrams:
                sendto(datagram, address)
            return
        batch = self._batches.get(route.transport)
        if batch is None:
            batch = self._batches[route.transport] = _Batch(route)
        batch.datagrams += datagrams
        batch.sockaddrs += [route.sockaddr] * len(datagrams)
        batch.addresses += [route.address] * len(datagrams)
        if not self._holding:
            self.flush()

    def flush(self) -> None:
        """Send what was kept, one `sendmmsg` per socket."""
        self._holding = False
        if not self._batches:
            return
        batches = self._batches
        self._batches = {}
        assert self._compiled is not None
        for transport, batch in batches.items():
            # The transports here are the event loop's (uvloop's, asyncio's): they have a write buffer.
            writer: Any = transport
            try:
                sent = 0
                if not writer.is_closing() and not writer.get_write_buffer_size():
                    sent = self._compiled.sendmmsg(batch.route.fd, batch.datagrams, batch.sockaddrs)
                if sent < len(batch.datagrams):
                    sendto = writer.sendto
                    for datagram, address in zip(
                        batch.datagrams[sent:], batch.addresses[sent:], strict=True
                    ):
                        sendto(datagram, address)
            except Exception:
                # The fan-out that flushes is the publisher's packet handling: never raise into it.
                log.exception("subscriber_send_failed")
