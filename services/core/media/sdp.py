"""Rules about SDP that more than one service applies: the gateway reads them from a client's offer, the
room manager decides with what the gateway read (seed 002 6.3.4 -203: a DataChannel in P2P mode only)."""

from __future__ import annotations


def offers_data_channel(sdp: str) -> bool:
    """Whether an SDP offer asks for a DataChannel: an m=application line (RFC 8841)."""
    return any(line.startswith("m=application") for line in sdp.splitlines())
