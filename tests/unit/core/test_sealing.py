"""Sealing secrets at rest (services/core/sealing.py): what seals opens with the same master secret,
purpose and context only, and a wrong key is one clear error of the caller's kind."""

from __future__ import annotations

import base64

import grpc
import pytest

from services.core.errors import ErrorKind, ParleyError
from services.core.sealing import SealingKey

MASTER = b"m" * 32
UNREADABLE = ErrorKind(-99999, "TEST_UNREADABLE", grpc.StatusCode.INTERNAL, "does not open with this key")


def key(secret: bytes = MASTER, purpose: str = "tests/secret") -> SealingKey:
    return SealingKey(secret, purpose=purpose, unreadable=UNREADABLE)


def test_a_sealed_value_opens_with_the_same_secret_in_another_process() -> None:
    envelope = key().seal(b"whsec_plain", context="b_1")
    assert b"whsec_plain" not in base64.b64decode(envelope.split(":")[2])
    assert SealingKey.is_envelope(envelope) and not SealingKey.is_envelope("whsec_plain")
    assert key().open(envelope, context="b_1") == b"whsec_plain"
    # A fresh nonce each time: the same value never seals to the same envelope.
    assert key().seal(b"whsec_plain", context="b_1") != envelope


@pytest.mark.parametrize(
    ("opener", "context", "envelope_of"),
    [
        pytest.param(key(b"w" * 32), "b_1", lambda e: e, id="wrong-master-secret"),
        pytest.param(key(purpose="tests/other"), "b_1", lambda e: e, id="other-purpose"),
        pytest.param(key(), "b_2", lambda e: e, id="other-row"),
        pytest.param(key(), "b_1", lambda e: e[:-4] + "AAA=", id="tampered"),
        pytest.param(key(), "b_1", lambda e: "v2" + e[2:], id="unknown-version"),
        pytest.param(key(), "b_1", lambda e: "whsec_plain", id="never-sealed"),
        pytest.param(key(), "b_1", lambda e: "v1:not base64:x", id="not-base64"),
    ],
)
def test_anything_else_is_the_callers_unreadable_error_without_the_value(
    opener: SealingKey, context: str, envelope_of: object
) -> None:
    envelope = envelope_of(key().seal(b"whsec_plain", context="b_1"))  # type: ignore[operator]
    with pytest.raises(ParleyError) as caught:
        opener.open(envelope, context=context)
    assert caught.value.kind is UNREADABLE
    assert "whsec_plain" not in str(caught.value)


def test_a_short_master_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        key(b"s" * 31)
