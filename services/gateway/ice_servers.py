"""The STUN/TURN servers a client is given when it connects, for its peer connections to the relay or, in
P2P mode, to its peer.

Static servers are passed on as configured. A TURN server that shares a secret with the gateway (coturn's
`use-auth-secret` / `static-auth-secret`, the "TURN REST API" of draft-uberti-behave-turn-rest) gets
credentials minted per connection: username `<expiry unix time>:<uid>`, credential
base64(HMAC-SHA1(secret, username)). They expire on their own, so nothing needs revoking, and the secret
never leaves the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from services.core.config import ClientIceSettings


class IceServerGrant:
    def __init__(self, settings: ClientIceSettings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock

    def for_client(self, uid: str) -> list[dict[str, Any]]:
        """RTCIceServer dictionaries (`urls`, `username`, `credential`) for `uid` (a device's sn)."""
        servers: list[dict[str, Any]] = []
        for server in self._settings.ice_servers:
            entry: dict[str, Any] = {"urls": list(server.urls)}
            if server.username is not None:
                entry["username"] = server.username
            if server.credential is not None:
                entry["credential"] = server.credential.get_secret_value()
            servers.append(entry)
        turn = self._settings.turn
        if turn is not None:
            expiry = int(self._clock()) + turn.credential_ttl_s
            username = f"{expiry}:{uid}"
            digest = hmac.new(
                turn.secret.get_secret_value().encode(), username.encode(), hashlib.sha1
            ).digest()
            servers.append(
                {
                    "urls": list(turn.urls),
                    "username": username,
                    "credential": base64.b64encode(digest).decode(),
                }
            )
        return servers
