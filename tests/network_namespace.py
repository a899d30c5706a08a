"""A network namespace of a test's own, joined to this one by a veth pair, to cut a process off the network
without killing it: the test runs the process under `link.exec_prefix`, and `cut` takes the namespace's
end of the link down (its routes go, its open connections hang as on a real partition) while this end,
and what listens on `link.host_address`, stays up for everything else. Both ends get addresses of a /30 of
10.200.0.0/13 picked at random; nothing is routed beyond the pair.

A loopback-only server (Redis) is reached through a relay listening on `link.host_address`
(tests/redis_keys.py's `RedisLink(host)`), so the namespace loses it with the link.

Needs root and iproute2; the test is skipped, saying why, without them. The namespace and the link are
removed when the block ends, also when the test failed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

# 10.200.0.0/13 has 2^17 /30 networks: two tests picking at once meet once in 131072.
_LINK_NETWORKS = ipaddress.ip_network("10.200.0.0/13")


@dataclass(frozen=True)
class NamespaceLink:
    namespace: str
    # The ends of the veth pair: this namespace's, and the test namespace's.
    host_device: str
    device: str
    host_address: str
    address: str

    @property
    def exec_prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.namespace)

    async def cut(self) -> None:
        await _ip("netns", "exec", self.namespace, "ip", "link", "set", self.device, "down")

    async def restore(self) -> None:
        await _ip("netns", "exec", self.namespace, "ip", "link", "set", self.device, "up")


@asynccontextmanager
async def namespace_link() -> AsyncIterator[NamespaceLink]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a network namespace needs root and iproute2 (ip)")
    tag = secrets.token_hex(4)
    first = int(_LINK_NETWORKS.network_address) + 4 * secrets.randbelow(_LINK_NETWORKS.num_addresses // 4)
    subnet = ipaddress.ip_network((first, 30))
    host_address, address = (str(host) for host in subnet.hosts())
    link = NamespaceLink(f"parley-{tag}", f"pv{tag}h", f"pv{tag}n", host_address, address)
    try:
        await _ip("netns", "add", link.namespace)
        await _ip("link", "add", link.host_device, "type", "veth", "peer", "name", link.device)
        await _ip("link", "set", link.device, "netns", link.namespace)
        await _ip("addr", "add", f"{host_address}/30", "dev", link.host_device)
        await _ip("link", "set", link.host_device, "up")
        inside = ("netns", "exec", link.namespace, "ip")
        await _ip(*inside, "addr", "add", f"{address}/30", "dev", link.device)
        await _ip(*inside, "link", "set", link.device, "up")
        await _ip(*inside, "link", "set", "lo", "up")
        yield link
    finally:
        # Deleting one end deletes the pair; a namespace with processes still in it goes once they end.
        await _ip("link", "del", link.host_device, check=False)
        await _ip("netns", "del", link.namespace, check=False)


async def _ip(*args: str, check: bool = True) -> None:
    process = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, error = await process.communicate()
    if check and process.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {error.decode().strip()}")
