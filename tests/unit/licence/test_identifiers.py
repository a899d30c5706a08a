"""uid, device sn, model_id and open_id are refused with the seeds' codes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.core.errors import ErrorKind, ParleyError
from services.licence.errors import (
    MODEL_ID_INVALID,
    OPEN_ID_MALFORMED,
    SN_ILLEGAL_CHARACTERS,
    SN_TOO_LONG,
    UID_INVALID,
)
from services.licence.identifiers import DeviceSn, parse_sn, validate_model_id, validate_open_id, validate_uid


def assert_refused(kind: ErrorKind, code: int, check: Callable[[str], object], value: str) -> None:
    with pytest.raises(ParleyError) as caught:
        check(value)
    assert caught.value.kind is kind
    assert caught.value.code == code


@pytest.mark.parametrize("uid", ["8010", "user_1", "_", "A" * 128, "abcXYZ_019"])
def test_uids_of_letters_digits_and_underscores_pass(uid: str) -> None:
    assert validate_uid(uid) == uid


@pytest.mark.parametrize(
    "uid",
    ["", "A" * 129, "user-1", "user.1", "user 1", "用户", "ü", "user_1\n", "١٢٣"],
    ids=["empty", "129", "hyphen", "dot", "space", "chinese", "umlaut", "newline", "arabic-digits"],
)
def test_other_uids_are_refused(uid: str) -> None:
    assert_refused(UID_INVALID, 9800103, validate_uid, uid)


@pytest.mark.parametrize(
    ("sn", "product_id", "device_name"),
    [
        ("ABCDEFGHIJ_dev01", "ABCDEFGHIJ", "dev01"),
        ("ABCDEFGHIJ_dev_01", "ABCDEFGHIJ", "dev_01"),
        ("P1_AA:BB:CC:DD:EE:FF", "P1", "AA:BB:CC:DD:EE:FF"),
        ("P1_door-bell.2@home", "P1", "door-bell.2@home"),
    ],
)
def test_an_sn_is_product_id_underscore_device_name(sn: str, product_id: str, device_name: str) -> None:
    parsed = parse_sn(sn)
    assert parsed == DeviceSn(product_id, device_name)
    assert str(parsed) == sn


def test_an_sn_of_128_bytes_passes() -> None:
    sn = "P_" + "d" * 126
    assert str(parse_sn(sn)) == sn


def test_an_sn_longer_than_128_bytes_is_9800001() -> None:
    assert_refused(SN_TOO_LONG, 9800001, parse_sn, "P_" + "d" * 127)


def test_the_sn_limit_counts_bytes_not_characters() -> None:
    # 43 characters, 129 bytes of UTF-8: too long before its characters are even looked at.
    assert_refused(SN_TOO_LONG, 9800001, parse_sn, "设" * 43)


@pytest.mark.parametrize(
    "sn",
    ["P1_设备", "P1_dev 01", "P1_dev/01", "P1_dev\n", "P-1_dev", "P1_", "_dev", "P1dev", ""],
    ids=[
        "chinese",
        "space",
        "slash",
        "newline",
        "hyphen-in-product",
        "no-device",
        "no-product",
        "no-separator",
        "empty",
    ],
)
def test_illegal_characters_or_shape_is_9800002(sn: str) -> None:
    assert_refused(SN_ILLEGAL_CHARACTERS, 9800002, parse_sn, sn)


@pytest.mark.parametrize("model_id", ["DYEbVE0uTXRkEpL9Ppvsxw", "model_1", "m-1", "M" * 128])
def test_base64url_model_ids_pass(model_id: str) -> None:
    assert validate_model_id(model_id) == model_id


@pytest.mark.parametrize("model_id", ["", "M" * 129, "model 1", "model/1", "model+1", "型号"])
def test_other_model_ids_are_9800003(model_id: str) -> None:
    assert_refused(MODEL_ID_INVALID, 9800003, validate_model_id, model_id)


@pytest.mark.parametrize("open_id", ["oABCD1234efgh5678ijkl-_mnopq", "o" * 128])
def test_base64url_open_ids_pass(open_id: str) -> None:
    assert validate_open_id(open_id) == open_id


@pytest.mark.parametrize("open_id", ["", "o" * 129, "open id", "open/id", "open=id"])
def test_other_open_ids_are_minus_7(open_id: str) -> None:
    assert_refused(OPEN_ID_MALFORMED, -7, validate_open_id, open_id)
