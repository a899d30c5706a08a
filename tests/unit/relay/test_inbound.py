"""The inbound fast path: which datagrams it takes from aioice, what it does with them, and `run_now`."""

from __future__ import annotations

import asyncio
from typing import Any

import pylibsrtp
import pytest
from aiortc import clock
from aiortc.rtcdtlstransport import State

from services.relay.fast_send import COMPILED
from services.relay.inbound import DTLS_RX_BYTES, DTLS_RX_PACKETS, InboundMedia
from services.relay.run_now import run_now

RTP = bytes([0x80, 96]) + bytes(20)
RTCP = bytes([0x80, 200]) + bytes(20)
STUN = bytes([0x00, 0x01]) + bytes(18)
DTLS = bytes([22, 0xFE, 0xFD]) + bytes(10)


class FakeSrtp:
    def __init__(self) -> None:
        self.refuse = False

    def unprotect(self, data: bytes) -> bytes:
        if self.refuse:
            raise pylibsrtp.Error("authentication failure")
        return b"rtp:" + data

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return b"rtcp:" + data


class FakeDtls:
    """What the fast path reads of aiortc's RTCDtlsTransport, with its handlers recording."""

    def __init__(self) -> None:
        self._state = State.CONNECTED
        self._rx_srtp = FakeSrtp()
        setattr(self, DTLS_RX_BYTES, 0)
        setattr(self, DTLS_RX_PACKETS, 0)
        self.rtp: list[tuple[bytes, int]] = []
        self.rtcp: list[bytes] = []

    def handle_rtp(self, data: bytes, arrival_time_ms: int) -> None:
        self.rtp.append((data, arrival_time_ms))

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self.rtcp.append(data)


class FakeProtocol:
    def __init__(self) -> None:
        self.stock: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.stock.append(data)


class FakeConnection:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._protocols = [FakeProtocol(), FakeProtocol()]


def fast_path() -> tuple[FakeDtls, FakeConnection]:
    dtls, connection = FakeDtls(), FakeConnection()
    InboundMedia(dtls, connection, rtp=lambda data, arrival: dtls.handle_rtp(data, arrival)).install()  # type: ignore[arg-type]
    return dtls, connection


def test_srtp_of_a_connected_transport_is_handled_at_once_and_counted() -> None:
    dtls, connection = fast_path()
    before = clock.current_ms()
    connection._protocols[1].datagram_received(RTP, ("127.0.0.1", 5000))
    connection._protocols[0].datagram_received(RTCP, ("127.0.0.1", 5000))
    assert [data for data, _ in dtls.rtp] == [b"rtp:" + RTP]
    # aiortc's clock (ms since the NTP epoch), within its rounding.
    assert before - 1 <= dtls.rtp[0][1] <= clock.current_ms() + 1
    assert dtls.rtcp == [b"rtcp:" + RTCP]
    assert [p.stock for p in connection._protocols] == [[], []]
    assert (vars(dtls)[DTLS_RX_PACKETS], vars(dtls)[DTLS_RX_BYTES]) == (2, len(RTP) + len(RTCP))


@pytest.mark.parametrize("datagram", [STUN, DTLS, b""], ids=["STUN", "DTLS", "empty"])
def test_stun_and_dtls_keep_aioices_path(datagram: bytes) -> None:
    dtls, connection = fast_path()
    connection._protocols[0].datagram_received(datagram, ("127.0.0.1", 5000))
    assert connection._protocols[0].stock == [datagram]
    assert (dtls.rtp, dtls.rtcp, vars(dtls)[DTLS_RX_PACKETS]) == ([], [], 0)


def test_media_before_the_transport_is_connected_keeps_aioices_path() -> None:
    dtls, connection = fast_path()
    dtls._state = State.CONNECTING
    connection._protocols[0].datagram_received(RTP, ("127.0.0.1", 5000))
    assert connection._protocols[0].stock == [RTP]
    assert dtls.rtp == []


def test_media_waits_behind_what_aioice_still_has_queued_so_order_is_kept() -> None:
    dtls, connection = fast_path()
    connection._queue.put_nowait((RTP, 1))
    connection._protocols[0].datagram_received(RTP, ("127.0.0.1", 5000))
    assert connection._protocols[0].stock == [RTP]
    connection._queue.get_nowait()
    connection._protocols[0].datagram_received(RTP, ("127.0.0.1", 5000))
    assert len(dtls.rtp) == 1


def test_a_datagram_srtp_refuses_is_counted_and_dropped() -> None:
    dtls, connection = fast_path()
    dtls._rx_srtp.refuse = True
    connection._protocols[0].datagram_received(RTP, ("127.0.0.1", 5000))
    assert (dtls.rtp, connection._protocols[0].stock, vars(dtls)[DTLS_RX_PACKETS]) == ([], [], 1)


def test_a_failing_handler_costs_only_its_datagram() -> None:
    dtls, connection = fast_path()

    def broken(data: bytes, arrival_time_ms: int) -> None:
        raise RuntimeError("a bug")

    dtls.handle_rtp = broken  # type: ignore[method-assign]
    connection._protocols[0].datagram_received(RTP, ("127.0.0.1", 5000))
    dtls.handle_rtp = FakeDtls.handle_rtp.__get__(dtls)  # type: ignore[method-assign]
    connection._protocols[0].datagram_received(RTP, ("127.0.0.1", 5000))
    assert len(dtls.rtp) == 1


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_real_srtp_is_unprotected_with_the_transports_session_of_the_moment(compiled: bool) -> None:
    """The same datagrams whichever unprotects (services.relay._fastsend or pylibsrtp); a session the
    transport replaces is not used after it, and what it refuses is dropped."""
    if compiled and COMPILED is None:
        pytest.skip("services.relay._fastsend was not built")
    dtls, connection = FakeDtls(), FakeConnection()
    InboundMedia(
        dtls,  # type: ignore[arg-type]
        connection,  # type: ignore[arg-type]
        rtp=lambda data, arrival: dtls.handle_rtp(data, arrival),
        compiled=COMPILED if compiled else None,
    ).install()
    socket = connection._protocols[0]
    rtp, rtcp = bytes([0x80, 96, 0, 1]) + bytes(8) + bytes(100), bytes([0x80, 200, 0, 6]) + bytes(24)

    def sessions(key: bytes) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
        outbound = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        inbound = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
        return pylibsrtp.Session(outbound), pylibsrtp.Session(inbound)

    first_out, dtls._rx_srtp = sessions(bytes(30))  # type: ignore[assignment]
    socket.datagram_received(first_out.protect(rtp), ("127.0.0.1", 5000))
    socket.datagram_received(first_out.protect_rtcp(rtcp), ("127.0.0.1", 5000))
    second_out, dtls._rx_srtp = sessions(bytes(range(30)))  # type: ignore[assignment]
    # Protected with the replaced session's key: refused by the new one.
    socket.datagram_received(first_out.protect(rtp[:3] + b"\x02" + rtp[4:]), ("127.0.0.1", 5000))
    socket.datagram_received(second_out.protect(rtp[:3] + b"\x03" + rtp[4:]), ("127.0.0.1", 5000))
    assert [data for data, _ in dtls.rtp] == [rtp, rtp[:3] + b"\x03" + rtp[4:]]
    assert dtls.rtcp == [rtcp]
    assert socket.stock == []


def test_run_now_runs_a_coroutine_that_does_not_suspend_before_returning() -> None:
    done: list[str] = []

    async def reply() -> None:
        done.append("sent")

    run_now(reply())
    assert done == ["sent"]


async def test_run_now_lets_a_task_finish_a_coroutine_that_suspends() -> None:
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []
    # Tasks other tests left on this loop are not the one run_now starts.
    already_running = asyncio.all_tasks()

    async def waits() -> None:
        steps.append("started")
        steps.append(await answer)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise

    run_now(waits())
    assert steps == ["started"]
    answer.set_result("answered")
    for _ in range(3):
        await asyncio.sleep(0)
    assert steps == ["started", "answered"]
    (task,) = asyncio.all_tasks() - already_running
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert steps == ["started", "answered", "cancelled"]
