"""The last steps of every subscriber's packets: SRTP protect, then the socket; and the first step of every
publisher's datagram, SRTP unprotect (`unprotector`, used by services/relay/inbound.py).

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

Unprotecting has the same two: libsrtp's `srtp_unprotect` (or `srtp_unprotect_rtcp`) called from C, or
pylibsrtp's `Session.unprotect`; both raise pylibsrtp's `Error` for a datagram libsrtp refuses.

Whatever `sendmmsg` does not take (a full socket buffer, an error) goes through the transport's `sendto`,
which queues it or reports the error as it would have; so does everything for a transport that is closing
(its socket may already be gone) or has datagrams queued already (they leave first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

import pylibsrtp
import structlog
from pylibsrtp import Session

from services.relay.udp_mux import socket_transport

log = structlog.get_logger(__name__)
Address = tuple[str, int]
Protect = Callable[[list[bytes]], list[bytes]]
# One datagram unprotected (pylibsrtp.Error where libsrtp refuses it).
Unprotect = Callable[[bytes], bytes]

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


def _srtp_function_address(name: str) -> int | None:
    """libsrtp's function `name` as an address, if pylibsrtp's binding has the expected type for it
    (`srtp_protect`'s: the unprotect functions have the same)."""
    from pylibsrtp._binding import ffi, lib

    if ffi.typeof(getattr(lib, name)).cname != SRTP_PROTECT_TYPE:
        return None
    return int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))


_SRTP_PROTECT = _srtp_function_address("srtp_protect") if COMPILED is not None else None
_SRTP_UNPROTECT = _srtp_function_address("srtp_unprotect") if COMPILED is not None else None
_SRTP_UNPROTECT_RTCP = _srtp_function_address("srtp_unprotect_rtcp") if COMPILED is not None else None


def _session_address(session: Session) -> int:
    from pylibsrtp._binding import ffi

    return int(ffi.cast("uintptr_t", session._srtp[0]))


def unprotector(session: Any, compiled: ModuleType | None = COMPILED) -> tuple[Unprotect, Unprotect]:
    """Functions that unprotect one SRTP and one SRTCP datagram with `session` (whoever calls them keeps
    `session`, as for `Outbox.protector`): compiled where the module is built and `session` is
    pylibsrtp's, pylibsrtp's own otherwise."""
    if (
        compiled is not None
        and isinstance(session, Session)
        and _SRTP_UNPROTECT is not None
        and _SRTP_UNPROTECT_RTCP is not None
    ):
        address = _session_address(session)
        # Partials (C), not lambdas: no Python frame per datagram.
        return (
            partial(compiled.unprotect, _SRTP_UNPROTECT, address, pylibsrtp.Error),
            partial(compiled.unprotect, _SRTP_UNPROTECT_RTCP, address, pylibsrtp.Error),
        )
    return session.unprotect, session.unprotect_rtcp


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
            address = _session_address(session)
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
                    for datagram, address in zip(batch.datagrams[sent:], batch.addresses[sent:], strict=True):
                        sendto(datagram, address)
            except Exception:
                # The fan-out that flushes is the publisher's packet handling: never raise into it.
                log.exception("subscriber_send_failed")
