"""Device registration credentials: the one-time snTicket and the device secret it buys.

001 registerAvtVoip: a user's app fetches an snTicket for a device, the ticket is valid 5 minutes, and
the device registers with it once; an expired (or otherwise bad) ticket is -10008. On success the device
keeps a "key file"; in Parley that is the device secret, which a factory reset replaces by registering
again with a new ticket.

Both are bearer credentials, so Parley stores only their SHA-256: a copy of the database then holds no
live ticket and no usable device secret. A plain hash suffices (no salt, no slow hash) because both are
256 random bits, far beyond guessing from their hash.

`check_ticket` decides whether one stored ticket may register one device now. Spending it must be one
atomic step in the store (mark used only where it is still unused), or two devices racing with one
ticket could both pass the check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.licence.errors import (
    SN_TICKET_EXPIRED,
    SN_TICKET_FOREIGN,
    SN_TICKET_UNKNOWN,
    SN_TICKET_USED,
)

SN_TICKET_TTL = timedelta(minutes=5)
_SECRET_BYTES = 32


@dataclass(frozen=True)
class TicketRecord:
    """What the store keeps of an issued snTicket."""

    token_hash: str
    sn: str
    app_id: str
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True)
class IssuedTicket:
    """The token goes to the user once and is never stored; the record is stored."""

    token: str
    record: TicketRecord


@dataclass(frozen=True)
class DeviceSecret:
    """The secret goes to the device once and is never stored; its hash is stored."""

    secret: str
    secret_hash: str


def hash_credential(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def issue_ticket(*, sn: str, app_id: str, now: datetime) -> IssuedTicket:
    token = secrets.token_urlsafe(_SECRET_BYTES)
    record = TicketRecord(hash_credential(token), sn, app_id, expires_at=now + SN_TICKET_TTL)
    return IssuedTicket(token, record)


def check_ticket(record: TicketRecord | None, *, sn: str, now: datetime) -> None:
    """Raise -10008 unless `record` (the one stored under the ticket's hash) may register `sn` at `now`."""
    if record is None:
        raise SN_TICKET_UNKNOWN()
    if record.sn != sn:
        raise SN_TICKET_FOREIGN()
    if record.used_at is not None:
        raise SN_TICKET_USED(f"the snTicket was used at {record.used_at.isoformat()}")
    if now >= record.expires_at:
        raise SN_TICKET_EXPIRED(f"the snTicket expired at {record.expires_at.isoformat()}")


def new_device_secret() -> DeviceSecret:
    secret = base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")
    return DeviceSecret(secret, hash_credential(secret))


def device_secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_credential(secret), secret_hash)
