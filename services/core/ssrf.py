"""The SSRF guard: which addresses a customer's URL may make Parley connect to (the webhook dispatcher's
callbacks, the recorder's watermark images).

A URL names a host; the host resolves to addresses; only the address is judged, so every spelling of
loopback (`[::1]`, `0x7f000001`, `2130706433`, a name that resolves to 127.0.0.1) is caught the same way.
The address judged is the address connected to, so DNS cannot answer differently between the check and
the connection (no rebinding window): the webhook dispatcher's client connects to what `resolve` returned
(services/webhooks/sender.py); `PinnedBackend` does the same inside httpcore's `connect_tcp` (the
recorder's watermark images). Redirects are never followed by either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._backends.auto import AutoBackend
from httpcore._backends.base import SOCKET_OPTION

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Networks a customer's URL must not reach unless an operator allow-lists them: private, loopback,
# link-local (which holds the cloud metadata address 169.254.169.254), CGNAT, multicast, unspecified,
# reserved and the other special-purpose ranges, for both families; and the cloud metadata addresses that
# live outside them (AWS's IPv6 fd00:ec2::254 is in fc00::/7 already).
BLOCKED_NETWORKS: tuple[IpNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)


class TargetRefused(Exception):
    """The URL's host resolves to an address the guard does not allow; nothing was sent."""


def _unmapped(address: IpAddress) -> IpAddress:
    """An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is judged as the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TargetGuard:
    def __init__(self, allowed: Iterable[str] = ()) -> None:
        """`allowed`: CIDRs (PARLEY_WEBHOOKS__ALLOWED_TARGETS, PARLEY_RECORDER__IMAGE_ALLOWED_TARGETS)
        admitted even inside a blocked network."""
        self._allowed = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in allowed)

    def refusal(self, address: str) -> str | None:
        """Why `address` (an IP literal) may not be connected to, or None when it may."""
        ip = _unmapped(ipaddress.ip_address(address.split("%", 1)[0]))
        if any(ip in network for network in self._allowed if network.version == ip.version):
            return None
        for network in BLOCKED_NETWORKS:
            if network.version == ip.version and ip in network:
                return f"{ip} is in {network}, which is not allow-listed"
        return None

    async def resolve(self, host: str, port: int) -> str:
        """The one address to connect to for `host`; TargetRefused when any address it resolves to is
        refused (a name that mixes public and private answers is refused whole)."""
        try:
            answers = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except socket.gaierror as error:
            raise TargetRefused(f"{host} does not resolve ({error.strerror})") from None
        addresses = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
        if not addresses:
            raise TargetRefused(f"{host} does not resolve")
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise TargetRefused(reason if host == address else f"{host} resolves to {reason}")
        return addresses[0]


class PinnedBackend(AsyncNetworkBackend):
    """httpcore's network backend, connecting only to the address the guard resolved and judged.

    TLS still verifies the certificate against the URL's host name: httpcore passes the origin's host as
    the server name, whatever address the stream connected to."""

    def __init__(self, guard: TargetGuard) -> None:
        self._guard = guard
        self._inner = AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        address = await self._guard.resolve(host, port)
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        raise TargetRefused("unix sockets are not allowed targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
