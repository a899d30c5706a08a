"""Which local addresses an aiortc peer connection gathers ICE host candidates on.

aiortc gathers host candidates through aioice, which asks `aioice.ice.get_host_addresses` for every
address of every interface except 127.0.0.1. Services that carry media (the relay, the recorder) bind
their media sockets to one configured address instead (127.0.0.1 in development and tests, where no
packet may leave loopback).

aioice has no per-connection option for host addresses, so `gathering_on` replaces that one module
function with one that answers from a context variable: a peer connection that gathers inside
`with gathering_on([...])` binds only those addresses, and every other aiortc user in the process keeps
aioice's behaviour. aiortc gathers in `RTCPeerConnection.setLocalDescription`, in tasks created there,
which inherit the context.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import aioice.ice

_host_addresses: ContextVar[tuple[str, ...] | None] = ContextVar("parley_ice_host_addresses", default=None)
_aioice_host_addresses = aioice.ice.get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _host_addresses.get()
    if chosen is None:
        return _aioice_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return [
        address
        for address in chosen
        if (use_ipv6 if ipaddress.ip_address(address).version == 6 else use_ipv4)
    ]


@contextmanager
def gathering_on(addresses: Sequence[str]) -> Iterator[None]:
    """Peer connections that gather ICE candidates inside this block use only `addresses` as hosts."""
    aioice.ice.get_host_addresses = _get_host_addresses
    token = _host_addresses.set(tuple(addresses))
    try:
        yield
    finally:
        _host_addresses.reset(token)
