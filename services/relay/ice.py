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
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from services.core.config import RelaySettings
from services.core.errors import StartupError
from services.core.media.gathering import gathering_on

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
        self._ice_servers = [
            RTCIceServer(
                urls=server.urls,
                username=server.username,
                credential=server.credential.get_secret_value() if server.credential else None,
            )
            for server in settings.ice_servers
        ]

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
            # aiortc keeps the aioice connection private on its gatherer; there is no public hook.
            connection = transceiver.receiver.transport.transport.iceGatherer._connection
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
            connection = transceiver.receiver.transport.transport.iceGatherer._connection
            for protocol in connection._protocols:
                sock = protocol.transport.get_extra_info("socket")
                if sock is None:
                    continue
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
