"""One UDP socket for every peer connection of the relay (`PARLEY_RELAY__UDP_PORT`), as LiveKit's
`rtc.udp_port` and mediasoup's `WebRtcServer`: a relay pod exposes one port.

aioice has no shared-socket mode: each `Connection` binds a socket of its own per host address in
`get_component_candidates` and hands every datagram to a `StunProtocol`, which parses STUN and passes the
rest (DTLS, SRTP, SRTCP) to its connection. The mux keeps aioice's protocols and replaces only their
sockets: `UdpMux.attach` gives a connection's host candidate a `StunProtocol` whose transport is a view of
the one shared socket, and the mux dispatches what the socket receives to the right protocol:

- by remote address, for everything from an address it knows (the media path: one dict lookup);
- by ICE username fragment for a STUN request: its USERNAME is `<relay ufrag>:<peer ufrag>`, and every
  connection gets a ufrag unique on this relay. The request's address then belongs to that connection
  (aioice still checks the request's MESSAGE-INTEGRITY before answering it);
- an address a connection sends a STUN check to belongs to it too unless another one has it, so the
  answers to the relay's own checks find their way back.

Datagrams from an unknown address that are not a STUN request for a known ufrag are dropped. Each
connection must be one transport (BUNDLE): the ufrag is per peer connection, so unbundled m-lines could
not be told apart.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any

import structlog
from aioice import stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol

log = structlog.get_logger(__name__)

Address = tuple[str, int]

# RFC 7983: a datagram whose first byte is 0-3 is STUN; DTLS, RTP and RTCP start higher.
_LAST_STUN_BYTE = 3


class UdpMux(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._by_ufrag: dict[str, StunProtocol] = {}
        self._by_address: dict[Address, StunProtocol] = {}
        self._addresses_of: dict[StunProtocol, set[Address]] = {}

    async def open(self, host: str, port: int) -> socket.socket:
        """Bind the shared socket (port 0: one the kernel picks); return it, for its buffers."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        sock: socket.socket = transport.get_extra_info("socket")
        log.info("udp_mux_open", address=self.address)
        return sock

    @property
    def address(self) -> Address:
        assert self._transport is not None, "the mux is not open"
        sockname = self._transport.get_extra_info("sockname")
        return (sockname[0], sockname[1])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def new_ufrag(self) -> str:
        """An ICE username fragment no connection on this mux has (ice-char, 16 of them)."""
        while True:
            ufrag = secrets.token_hex(8)
            if ufrag not in self._by_ufrag:
                return ufrag

    def attach(self, connection: Connection, component: int) -> Candidate:
        """Give `connection` its host candidate on the shared socket; returns the candidate."""
        protocol = StunProtocol(connection)
        protocol.connection_made(_SharedTransport(self, protocol))
        host, port = self.address
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        self._by_ufrag[connection.local_username] = protocol
        self._addresses_of[protocol] = set()
        # aioice closes its connection's protocols, this one included, when the peer connection closes.
        connection._protocols.append(protocol)
        return protocol.local_candidate

    # asyncio.DatagramProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        address = addr if len(addr) == 2 else (addr[0], addr[1])
        protocol = self._by_address.get(address)
        if data and data[0] > _LAST_STUN_BYTE:
            if protocol is not None:
                protocol.datagram_received(data, address)
            return
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        if message.message_class == stun.Class.REQUEST:
            username = message.attributes.get("USERNAME", "")
            target = self._by_ufrag.get(username.partition(":")[0])
            if target is None:
                return
            if target is not protocol:
                self._route(address, target)
            protocol = target
        if protocol is not None:
            protocol.datagram_received(data, address)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for one peer's address (it went away); consent freshness ends that peer.
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        for protocol in list(self._addresses_of):
            self.detach(protocol)

    # the connections' side

    def sendto(self, protocol: StunProtocol, data: bytes, address: Address) -> None:
        assert self._transport is not None
        if data and data[0] <= _LAST_STUN_BYTE and address not in self._by_address:
            self._route(address, protocol)
        self._transport.sendto(data, address)

    def detach(self, protocol: StunProtocol) -> None:
        addresses = self._addresses_of.pop(protocol, None)
        if addresses is None:
            return
        for address in addresses:
            if self._by_address.get(address) is protocol:
                del self._by_address[address]
        ufrag = protocol.receiver.local_username
        if self._by_ufrag.get(ufrag) is protocol:
            del self._by_ufrag[ufrag]
        asyncio.get_running_loop().call_soon(protocol.connection_lost, None)

    def _route(self, address: Address, protocol: StunProtocol) -> None:
        previous = self._by_address.get(address)
        if previous is not None:
            self._addresses_of[previous].discard(address)
        self._by_address[address] = protocol
        self._addresses_of[protocol].add(address)


def socket_transport(transport: asyncio.BaseTransport) -> asyncio.BaseTransport:
    """The transport that owns the socket `transport` sends on: the mux's for a connection's view of the
    shared socket, `transport` itself otherwise (services/relay/fast_send.py writes to that socket)."""
    if isinstance(transport, _SharedTransport) and transport._mux._transport is not None:
        return transport._mux._transport
    return transport


class _SharedTransport(asyncio.DatagramTransport):
    """One connection's view of the shared socket: its sends go out there, closing it detaches only it."""

    def __init__(self, mux: UdpMux, protocol: StunProtocol) -> None:
        super().__init__()
        self._mux = mux
        self._protocol = protocol
        self._closing = False

    def sendto(self, data: Any, addr: Any = None) -> None:
        self._mux.sendto(self._protocol, data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        # No "socket": the shared socket's buffers are the mux's, sized once.
        return self._mux.address if name == "sockname" else default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._mux.detach(self._protocol)

    def abort(self) -> None:
        self.close()
