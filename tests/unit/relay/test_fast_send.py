"""The subscribers' way out: SRTP protect and socket writes, compiled (services/relay/_fastsend.c) and in
Python, with the same results."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pylibsrtp
import pytest
from pylibsrtp import Policy, Session

from services.relay import fast_send
from services.relay.fast_send import COMPILED, Outbox
from services.relay.udp_mux import UdpMux

KEY = bytes(range(30))
SSRC = 0x11223344
needs_compiled = pytest.mark.skipif(COMPILED is None, reason="services.relay._fastsend was not built")


def rtp(sequence_number: int, size: int = 1100) -> bytes:
    header = bytes([0x80, 96]) + sequence_number.to_bytes(2, "big") + (3000).to_bytes(4, "big")
    return header + SSRC.to_bytes(4, "big") + bytes([sequence_number & 0xFF]) * size


def session(direction: int) -> Session:
    return Session(Policy(key=KEY, ssrc_type=direction))


class Counting:
    """The compiled module, counting its sendmmsg calls; `accept` caps what each call takes."""

    def __init__(self, module: ModuleType, accept: int | None = None) -> None:
        self._module = module
        self.accept = accept
        self.calls: list[int] = []
        self.protect = module.protect
        self.sockaddr = module.sockaddr

    def sendmmsg(self, fd: int, datagrams: list[bytes], addresses: list[bytes]) -> int:
        self.calls.append(len(datagrams))
        if self.accept is not None:
            return self._module.sendmmsg(fd, datagrams[: self.accept], addresses[: self.accept])
        return self._module.sendmmsg(fd, datagrams, addresses)


@pytest.fixture
def receivers() -> Iterator[list[socket.socket]]:
    sockets = []
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sockets.append(sock)
    yield sockets
    for sock in sockets:
        sock.close()


def received(sock: socket.socket, count: int) -> list[bytes]:
    return [sock.recv(2048) for _ in range(count)]


async def sender_transport() -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    return transport


def address(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()
    return (host, port)


@pytest.fixture(params=[True, False], ids=["compiled", "python"])
def module(request: pytest.FixtureRequest) -> ModuleType | None:
    """The compiled module, or None for the Python path."""
    if request.param and COMPILED is None:
        pytest.skip("services.relay._fastsend was not built")
    return COMPILED if request.param else None


def test_protected_packets_are_libsrtps_own(module: ModuleType | None) -> None:
    packets = [rtp(sequence_number) for sequence_number in range(5)]
    outbound = session(Policy.SSRC_ANY_OUTBOUND)
    protected = Outbox(module).protector(outbound)(packets)
    # The same key, SSRC and sequence numbers give the same SRTP packets whoever calls libsrtp.
    assert protected == [session(Policy.SSRC_ANY_OUTBOUND).protect(packet) for packet in packets]
    inbound = session(Policy.SSRC_ANY_INBOUND)
    assert [inbound.unprotect(packet) for packet in protected] == packets


@needs_compiled
def test_the_compiled_protect_refuses_what_pylibsrtp_refuses() -> None:
    protect = Outbox(COMPILED).protector(session(Policy.SSRC_ANY_OUTBOUND))
    with pytest.raises(ValueError):
        protect([rtp(1, size=1500)])
    with pytest.raises(TypeError):
        protect([bytearray(rtp(1))])  # type: ignore[list-item]


def test_without_the_expected_libsrtp_function_type_protect_is_pylibsrtps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fast_send, "_SRTP_PROTECT", None)
    outbound = session(Policy.SSRC_ANY_OUTBOUND)
    calls = []
    monkeypatch.setattr(outbound, "protect", lambda packet: calls.append(packet) or packet)
    Outbox(SimpleNamespace()).protector(outbound)([b"a", b"b"])  # type: ignore[arg-type]
    assert calls == [b"a", b"b"]


@needs_compiled
async def test_one_fanouts_datagrams_leave_in_one_sendmmsg_per_socket(receivers: list[socket.socket]) -> None:
    assert COMPILED is not None
    counting = Counting(COMPILED)
    outbox = Outbox(counting)  # type: ignore[arg-type]
    transport = await sender_transport()
    try:
        first, second = (outbox.route(transport, address(sock)) for sock in receivers)
        outbox.hold()
        outbox.send(first, [b"\x80a1", b"\x80a2"])
        outbox.send(second, [b"\x80b1"])
        outbox.send(first, [b"\x80a3"])
        assert counting.calls == []  # held until the fan-out ends
        outbox.flush()
        assert counting.calls == [4]
        assert received(receivers[0], 3) == [b"\x80a1", b"\x80a2", b"\x80a3"]
        assert received(receivers[1], 1) == [b"\x80b1"]
        # Outside a fan-out (a sender draining its queue) datagrams leave at once.
        outbox.send(first, [b"\x80a4"])
        assert counting.calls == [4, 1] and received(receivers[0], 1) == [b"\x80a4"]
    finally:
        transport.close()


async def test_in_python_datagrams_go_through_the_transport(receivers: list[socket.socket]) -> None:
    outbox = Outbox(None)
    transport = await sender_transport()
    try:
        route = outbox.route(transport, address(receivers[0]))
        assert route.fd == -1
        outbox.hold()
        outbox.send(route, [b"\x80a1", b"\x80a2"])
        outbox.flush()
        assert received(receivers[0], 2) == [b"\x80a1", b"\x80a2"]
    finally:
        transport.close()


@needs_compiled
async def test_what_sendmmsg_does_not_take_goes_through_the_transport(receivers: list[socket.socket]) -> None:
    assert COMPILED is not None
    counting = Counting(COMPILED, accept=1)
    outbox = Outbox(counting)  # type: ignore[arg-type]
    transport = await sender_transport()
    sent: list[tuple[bytes, Any]] = []
    sendto = transport.sendto

    def recording_sendto(data: Any, addr: Any = None) -> None:
        sent.append((bytes(data), addr))
        sendto(data, addr)

    try:
        route = outbox.route(transport, address(receivers[0]))
        transport.sendto = recording_sendto  # type: ignore[method-assign]
        outbox.hold()
        outbox.send(route, [b"\x80a1", b"\x80a2", b"\x80a3"])
        outbox.flush()
        assert sent == [(b"\x80a2", address(receivers[0])), (b"\x80a3", address(receivers[0]))]
        assert received(receivers[0], 3) == [b"\x80a1", b"\x80a2", b"\x80a3"]

        # A closing transport's socket may be gone: its datagrams are the transport's to drop.
        sent.clear()
        transport.close()
        outbox.send(route, [b"\x80a4"])
        assert counting.calls == [3] and sent == [(b"\x80a4", address(receivers[0]))]
    finally:
        transport.close()


@needs_compiled
async def test_on_the_one_udp_port_every_subscriber_is_one_batch(receivers: list[socket.socket]) -> None:
    assert COMPILED is not None
    mux = UdpMux()
    await mux.open("127.0.0.1", 0)
    counting = Counting(COMPILED)
    outbox = Outbox(counting)  # type: ignore[arg-type]
    try:
        views = []
        for _ in receivers:
            connection: Any = SimpleNamespace(local_username=mux.new_ufrag(), _protocols=[])
            mux.attach(connection, 1)
            views.append(connection._protocols[0].transport)
        routes = [outbox.route(view, address(sock)) for view, sock in zip(views, receivers, strict=True)]
        assert routes[0].transport is routes[1].transport  # the mux's socket, not each view
        outbox.hold()
        for index, route in enumerate(routes):
            outbox.send(route, [b"\x80" + bytes([index]) * 2, b"\x80" + bytes([index]) * 3])
        outbox.flush()
        assert counting.calls == [4]
        assert [received(sock, 2) for sock in receivers] == [
            [b"\x80\x00\x00", b"\x80\x00\x00\x00"],
            [b"\x80\x01\x01", b"\x80\x01\x01\x01"],
        ]
    finally:
        mux.close()


@needs_compiled
def test_sockaddr_takes_ip_literals_only() -> None:
    assert COMPILED is not None
    assert len(COMPILED.sockaddr("127.0.0.1", 9)) == 16
    assert len(COMPILED.sockaddr("::1", 9)) == 28
    with pytest.raises(ValueError):
        COMPILED.sockaddr("localhost", 9)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler: the Python send loop is expected")
def test_the_extension_is_built_by_the_install() -> None:
    """`make install` (pip install -e .) compiles it where a compiler is, as on every development and CI
    machine: a missing module there is a broken build, not the fallback."""
    assert COMPILED is not None


def test_unprotected_datagrams_are_pylibsrtps_own_and_refused_ones_raise_its_error(
    module: ModuleType | None,
) -> None:
    packets = [rtp(sequence_number) for sequence_number in range(3)]
    outbound = session(Policy.SSRC_ANY_OUTBOUND)
    datagrams = [outbound.protect(packet) for packet in packets]
    rtcp = outbound.protect_rtcp(bytes([0x80, 200, 0, 6]) + SSRC.to_bytes(4, "big") + bytes(20))
    # Kept while its functions are used: the compiled ones hold only its address.
    inbound = session(Policy.SSRC_ANY_INBOUND)
    unprotect, unprotect_rtcp = fast_send.unprotector(inbound, module)
    assert [unprotect(datagram) for datagram in datagrams] == packets
    assert unprotect_rtcp(rtcp) == session(Policy.SSRC_ANY_INBOUND).unprotect_rtcp(rtcp)
    # Replayed, damaged, or not SRTP at all: refused as pylibsrtp refuses it.
    damaged = datagrams[0][:-1] + bytes([datagrams[0][-1] ^ 1])
    for refused in (datagrams[1], damaged, b"\x80"):
        with pytest.raises(pylibsrtp.Error):
            unprotect(refused)
    with pytest.raises(pylibsrtp.Error):
        unprotect_rtcp(rtcp)
    with pytest.raises(ValueError):
        unprotect(bytes(1501))
    with pytest.raises(TypeError):
        unprotect(bytearray(datagrams[2]))  # type: ignore[arg-type]


def test_unprotect_is_pylibsrtps_for_a_session_that_is_not_pylibsrtps() -> None:
    stand_in = SimpleNamespace(unprotect=lambda datagram: b"rtp", unprotect_rtcp=lambda datagram: b"rtcp")
    unprotect, unprotect_rtcp = fast_send.unprotector(stand_in, SimpleNamespace())  # type: ignore[arg-type]
    assert (unprotect(b"x"), unprotect_rtcp(b"y")) == (b"rtp", b"rtcp")
