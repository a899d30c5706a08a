"""Which ICE candidates the relay offers and accepts, from its settings.

aiortc gathers host candidates through aioice, which asks `aioice.ice.get_host_addresses` for every
address of every interface except 127.0.0.1, and names a public STUN server when no ICE servers are
configured. Neither suits a relay: its media sockets belong on one configured address (127.0.0.1 in
development and tests, where no packet may leave loopback) and its STUN/TURN servers are settings.

The relay's peer connections gather inside `gathering_on` (services/core/media/gathering.py), so they
bind only the listen address.

Candidates in SDP are filtered as text in both directions, so a peer's candidates outside
`candidate_networks` are never tried and the relay's answer carries no address it must not reveal. A
peer can still send connectivity checks from another of its sockets (Chromium pairs every socket it has
with the relay's address); `refuse_outside_checks` leaves those unanswered, since answering would teach
the relay a peer-reflexive candidate outside the allowed networks and send media there.

With `udp_port` set, every peer connection's host candidate is on one shared socket (services/relay/
udp_mux.py) instead of a socket of its own; STUN-derived and TURN candidates are gathered as before.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from aioice.ice import Connection
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from services.core.config import RelaySettings
from services.core.errors import StartupError
from services.core.media.gathering import gathering_on
from services.relay.errors import SDP_MALFORMED
from services.relay.udp_mux import UdpMux

log = structlog.get_logger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_GUARDED = "_parley_checks_guarded"


def _lines(sdp: str) -> Iterator[tuple[str, str]]:
    """Each SDP line as (content, line ending), so lines can be rewritten without changing endings."""
    for line in sdp.splitlines(keepends=True):
        content = line.rstrip("\r\n")
        yield content, line[len(content) :]


def _candidate_fields(content: str) -> list[str] | None:
    """None for a line that is no candidate, [] for a candidate line that does not parse."""
    # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
    if not content.startswith("a=candidate:"):
        return None
    fields = content.split(" ")
    return fields if len(fields) >= 8 and fields[6] == "typ" else []


class IcePolicy:
    """The relay's ICE settings applied to its peer connections and to the SDP it exchanges."""

    def __init__(self, settings: RelaySettings) -> None:
        try:
            listen = ipaddress.ip_address(settings.listen_address)
            announced = (
                ipaddress.ip_address(settings.announced_address) if settings.announced_address else None
            )
            self._networks: list[IpNetwork] = [
                ipaddress.ip_network(network) for network in settings.candidate_networks
            ]
        except ValueError as error:
            raise StartupError(f"relay ICE settings: {error}") from None
        self._listen = str(listen)
        # A wildcard listen address keeps aioice's own choice of interfaces.
        self._host_addresses = None if listen.is_unspecified else (self._listen,)
        self._announced = str(announced) if announced else None
        self._every_address_allowed = {n.version for n in self._networks if n.prefixlen == 0} == {4, 6}
        self._socket_buffers = [
            (option, size)
            for option, size in (
                (socket.SO_RCVBUF, settings.udp_receive_buffer_bytes),
                (socket.SO_SNDBUF, settings.udp_send_buffer_bytes),
            )
            if size
        ]
        self._capped_buffer_logged = False
        self._udp_port = settings.udp_port
        if self._udp_port is not None and self._host_addresses is None:
            raise StartupError("relay ICE settings: udp_port needs a listen_address that is no wildcard")
        self._mux: UdpMux | None = None
        self._ice_servers = [
            RTCIceServer(
                urls=server.urls,
                username=server.username,
                credential=server.credential.get_secret_value() if server.credential else None,
            )
            for server in settings.ice_servers
        ]

    async def open(self) -> None:
        """Bind the shared UDP socket when the relay has one port for all its peers."""
        if self._udp_port is None or self._mux is not None:
            return
        mux = UdpMux()
        try:
            self._size_socket(await mux.open(self._listen, self._udp_port))
        except OSError as error:
            mux.close()
            raise StartupError(f"relay UDP port {self._listen}:{self._udp_port}: {error}") from None
        self._mux = mux

    def close(self) -> None:
        if self._mux is not None:
            self._mux.close()
            self._mux = None

    @property
    def udp_address(self) -> tuple[str, int] | None:
        """The shared socket's address, when the relay has one."""
        return self._mux.address if self._mux is not None else None

    def share_port(self, pc: RTCPeerConnection) -> None:
        """Put `pc`'s host candidate on the shared socket (call after the offer, before the answer)."""
        if self._udp_port is None:
            return
        assert self._mux is not None, "IcePolicy.open() first"
        mux = self._mux
        connections = {_connection(transceiver) for transceiver in pc.getTransceivers()}
        if len(connections) != 1:
            raise SDP_MALFORMED("the relay's one UDP port needs every m-line in one BUNDLE group")
        [connection] = connections
        # The answer's ice-ufrag is read from the connection: it must be unique before createAnswer.
        connection._local_username = mux.new_ufrag()
        gather_elsewhere = connection.get_component_candidates

        # aioice's signature, timeout included (it bounds the STUN/TURN queries).
        async def get_component_candidates(component: int, addresses: list[str], timeout: int = 5) -> Any:  # noqa: ASYNC109
            # No host sockets of its own: the shared one, then whatever its STUN/TURN servers give.
            return [mux.attach(connection, component), *await gather_elsewhere(component, [], timeout)]

        connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]

    def configuration(self) -> RTCConfiguration:
        # An explicit empty list: aiortc falls back to a public STUN server when given none.
        return RTCConfiguration(iceServers=list(self._ice_servers))

    @contextmanager
    def gathering(self) -> Iterator[None]:
        if self._host_addresses is None:
            yield
            return
        with gathering_on(self._host_addresses):
            yield

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            # A host name (an mDNS .local candidate) cannot be checked before it resolves.
            return self._every_address_allowed
        return any(ip in network for network in self._networks)

    def refuse_outside_checks(self, pc: RTCPeerConnection) -> None:
        """Leave unanswered the connectivity checks that arrive from outside `candidate_networks`."""
        if self._every_address_allowed:
            return
        for transceiver in pc.getTransceivers():
            connection = _connection(transceiver)
            if getattr(connection, _GUARDED, False):
                continue
            answer_check = connection.request_received

            def request_received(
                message: Any, addr: tuple[str, int], protocol: Any, answer: Any = answer_check
            ) -> None:
                if self.allows(addr[0]):
                    answer(message, addr, protocol)

            connection.request_received = request_received  # type: ignore[method-assign]
            setattr(connection, _GUARDED, True)

    def size_socket_buffers(self, pc: RTCPeerConnection) -> None:
        """Give the media sockets `pc` gathered the configured kernel buffers (call after gathering).

        At a few thousand packets/s a burst (a key frame to many subscribers, a scheduling hiccup) outruns
        the default buffers and the kernel drops packets (`Udp: RcvbufErrors` in /proc/net/snmp). aioice
        creates the sockets in `Connection.get_component_candidates` and sets only a 256 KiB receive
        buffer, with no option for more, so the relay resizes them once they exist."""
        if not self._socket_buffers:
            return
        for transceiver in pc.getTransceivers():
            for protocol in _connection(transceiver)._protocols:
                sock = protocol.transport.get_extra_info("socket")
                if sock is not None:
                    self._size_socket(sock)

    def _size_socket(self, sock: socket.socket) -> None:
        for option, size in self._socket_buffers:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            # Linux reports twice what it granted, and grants at most net.core.[rw]mem_max.
            if sock.getsockopt(socket.SOL_SOCKET, option) < size and not self._capped_buffer_logged:
                self._capped_buffer_logged = True
                log.warning(
                    "udp_buffer_capped",
                    option="SO_RCVBUF" if option == socket.SO_RCVBUF else "SO_SNDBUF",
                    requested=size,
                    granted=sock.getsockopt(socket.SOL_SOCKET, option) // 2,
                    hint="raise net.core.rmem_max / net.core.wmem_max",
                )

    def incoming(self, sdp: str) -> str:
        """A peer's SDP without the candidates the relay must not try."""
        return "".join(content + ending for content, ending in _lines(sdp) if self._keeps(content))

    def outgoing(self, sdp: str) -> str:
        """The relay's own SDP with only allowed candidates, host ones announced for a 1:1 NAT."""
        return "".join(
            self._announce(content) + ending for content, ending in _lines(sdp) if self._keeps(content)
        )

    def _keeps(self, content: str) -> bool:
        fields = _candidate_fields(content)
        return fields is None or (bool(fields) and self.allows(fields[4]))

    def _announce(self, content: str) -> str:
        if self._announced is None:
            return content
        fields = _candidate_fields(content)
        if fields:
            on_listen_address = fields[4] == self._listen or self._host_addresses is None
            if fields[7] == "host" and on_listen_address:
                fields[4] = self._announced
                return " ".join(fields)
        elif content.startswith("c=IN ") and content.split(" ")[2:] == [self._listen]:
            return f"c=IN {'IP6' if ':' in self._announced else 'IP4'} {self._announced}"
        return content


def _connection(transceiver: Any) -> Connection:
    # aiortc keeps the aioice connection private on its gatherer; there is no public hook.
    connection: Connection = transceiver.receiver.transport.transport.iceGatherer._connection
    return connection
