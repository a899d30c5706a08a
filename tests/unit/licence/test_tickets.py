"""An snTicket registers one device once within 5 minutes; device secrets are stored hashed."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from services.core.errors import ErrorKind, ParleyError
from services.licence.errors import SN_TICKET_EXPIRED, SN_TICKET_FOREIGN, SN_TICKET_UNKNOWN, SN_TICKET_USED
from services.licence.tickets import (
    SN_TICKET_TTL,
    TicketRecord,
    check_ticket,
    device_secret_matches,
    hash_credential,
    issue_ticket,
    new_device_secret,
)

NOW = datetime(2025, 11, 21, 8, 0, tzinfo=UTC)
SN = "ABCDEFGHIJ_dev01"
APP_ID = "ALIPUB059F038311550"


def assert_ticket_refused(
    kind: ErrorKind, record: TicketRecord | None, *, sn: str = SN, now: datetime
) -> None:
    with pytest.raises(ParleyError) as caught:
        check_ticket(record, sn=sn, now=now)
    assert caught.value.kind is kind
    assert caught.value.code == -10008


def test_a_ticket_lasts_five_minutes_and_is_stored_only_as_its_hash() -> None:
    issued = issue_ticket(sn=SN, app_id=APP_ID, now=NOW)
    assert SN_TICKET_TTL == timedelta(minutes=5)
    assert issued.record == TicketRecord(
        hash_credential(issued.token), SN, APP_ID, NOW + timedelta(minutes=5)
    )
    assert issued.token not in dataclasses.astuple(issued.record)


def test_tickets_are_unguessable() -> None:
    tokens = {issue_ticket(sn=SN, app_id=APP_ID, now=NOW).token for _ in range(100)}
    assert len(tokens) == 100
    # token_urlsafe(32): 32 random bytes, 43 Base64url characters.
    assert all(len(token) == 43 for token in tokens)


def test_a_fresh_ticket_registers_its_device_until_the_last_instant() -> None:
    record = issue_ticket(sn=SN, app_id=APP_ID, now=NOW).record
    check_ticket(record, sn=SN, now=NOW)
    check_ticket(record, sn=SN, now=NOW + SN_TICKET_TTL - timedelta(microseconds=1))


@pytest.mark.parametrize("age", [SN_TICKET_TTL, SN_TICKET_TTL + timedelta(seconds=1), timedelta(days=1)])
def test_a_ticket_five_minutes_old_is_expired(age: timedelta) -> None:
    record = issue_ticket(sn=SN, app_id=APP_ID, now=NOW).record
    assert_ticket_refused(SN_TICKET_EXPIRED, record, now=NOW + age)


def test_a_used_ticket_is_refused_even_within_five_minutes() -> None:
    record = dataclasses.replace(
        issue_ticket(sn=SN, app_id=APP_ID, now=NOW).record, used_at=NOW + timedelta(seconds=10)
    )
    assert_ticket_refused(SN_TICKET_USED, record, now=NOW + timedelta(seconds=20))


def test_a_ticket_issued_for_another_device_is_foreign() -> None:
    record = issue_ticket(sn=SN, app_id=APP_ID, now=NOW).record
    assert_ticket_refused(SN_TICKET_FOREIGN, record, sn="ABCDEFGHIJ_dev02", now=NOW)


def test_a_ticket_never_issued_is_unknown() -> None:
    assert_ticket_refused(SN_TICKET_UNKNOWN, None, now=NOW)


def test_a_device_secret_is_32_random_bytes_stored_as_its_hash() -> None:
    secret = new_device_secret()
    assert len(base64.b64decode(secret.secret, validate=True)) == 32
    assert secret.secret_hash == hash_credential(secret.secret)
    assert secret.secret not in secret.secret_hash
    assert device_secret_matches(secret.secret, secret.secret_hash)


def test_another_secret_does_not_match() -> None:
    first, second = new_device_secret(), new_device_secret()
    assert first.secret != second.secret
    assert not device_secret_matches(second.secret, first.secret_hash)
