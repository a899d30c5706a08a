"""Restricting the local addresses the SDK's peer connections offer as ICE host candidates.

aioice has no per-connection setting for it; it asks `aioice.ice.get_host_addresses`. While a peer
connection gathers (inside `setLocalDescription`) under `only_hosts(...)`, that function answers from a
context variable, so other aiortc users in the process are untouched. The platform's services do the same
in services/core/media/gathering.py; the SDK keeps its own copy because a client package must not import
the platform's (docs/python-sdk.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import aioice.ice

_chosen: ContextVar[tuple[str, ...] | None] = ContextVar("parley_sdk_ice_hosts", default=None)
_stock = aioice.ice.get_host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _chosen.get()
    if chosen is None:
        return _stock(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    wanted = {4: use_ipv4, 6: use_ipv6}
    return [address for address in chosen if wanted[ipaddress.ip_address(address).version]]


@contextmanager
def only_hosts(addresses: Sequence[str] | None) -> Iterator[None]:
    """Gather on `addresses` only; `None` keeps aioice's choice (every interface)."""
    if addresses is None:
        yield
        return
    aioice.ice.get_host_addresses = _host_addresses
    token = _chosen.set(tuple(addresses))
    try:
        yield
    finally:
        _chosen.reset(token)
