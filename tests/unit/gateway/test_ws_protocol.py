"""Reading requests of protocol v1 and shaping its answers: a bad frame becomes one error, never a crash."""

from __future__ import annotations

import json

import pytest

from services.core.errors import ParleyError
from services.gateway.protocol import (
    BadRequest,
    DeviceConnect,
    UserConnect,
    encode,
    failure,
    ok,
    parse_params,
    parse_request,
    push,
)


def test_a_request_is_read_with_its_command_id_and_params() -> None:
    request = parse_request('{"cmd": "ping", "req_id": "r1", "params": {"a": 1}}')
    assert (request.cmd, request.req_id, request.params) == ("ping", "r1", {"a": 1})


def test_params_may_be_left_out_and_unknown_keys_are_ignored() -> None:
    request = parse_request('{"cmd": "ping", "req_id": "r1", "v": 2}')
    assert request.params == {}


@pytest.mark.parametrize(
    ("frame", "req_id", "says"),
    [
        ("not json", None, "not valid JSON"),
        ("", None, "not valid JSON"),
        ('{"cmd": "ping", "req_id": "r1"', None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        ('"ping"', None, "JSON object"),
        ("null", None, "JSON object"),
        ('{"req_id": "r1"}', "r1", "cmd"),
        ('{"cmd": "ping"}', None, "req_id"),
        ('{"cmd": "ping", "req_id": 7}', None, "req_id"),
        ('{"cmd": "ping", "req_id": ""}', None, "req_id"),
        ('{"cmd": 1, "req_id": "r1"}', "r1", "cmd"),
        ('{"cmd": "ping", "req_id": "r1", "params": []}', "r1", "params"),
        ('{"cmd": "ping", "req_id": "r1", "params": "x"}', "r1", "params"),
        ("[" * 60_000 + "]" * 60_000, None, "not valid JSON"),
        ('{"cmd": "ping", "req_id": "r1", "n": ' + "9" * 10_000 + "}", None, "not valid JSON"),
    ],
)
def test_a_bad_frame_is_one_malformed_message_error(frame: str, req_id: str | None, says: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_request(frame)
    assert raised.value.error.code == -91001
    assert raised.value.req_id == req_id
    assert says in raised.value.error.message


def test_a_user_connect_takes_the_seeds_fields() -> None:
    params = {"uid": "alice_1", "biz_name": "b", "sub_biz": "app", "workspace_id": "w", "sign": "s"}
    user = parse_params(UserConnect, {**params, "room_server_url": "wss://elsewhere"})
    assert (user.uid, user.biz_name, user.sub_biz, user.workspace_id, user.sign) == (
        "alice_1",
        "b",
        "app",
        "w",
        "s",
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"uid": None}, "uid"),
        ({"uid": 42}, "uid"),
        ({"uid": "alice smith"}, "uid"),
        ({"uid": "a" * 129}, "uid"),
        ({"biz_name": ""}, "biz_name"),
        ({"sign": 5}, "sign"),
        ({"workspace_id": ["w"]}, "workspace_id"),
    ],
)
def test_a_missing_or_ill_typed_connect_field_is_invalid_params(change: dict[str, object], says: str) -> None:
    params: dict[str, object] = {
        "uid": "alice",
        "biz_name": "b",
        "sub_biz": "a",
        "workspace_id": "w",
        "sign": "s",
    }
    params.update(change)
    params = {key: value for key, value in params.items() if value is not None}
    with pytest.raises(ParleyError) as raised:
        parse_params(UserConnect, params)
    assert raised.value.code == -91003
    assert raised.value.message.startswith(says)


def test_a_device_sn_is_at_most_128_characters() -> None:
    assert parse_params(DeviceConnect, {"sn": "p_" + "d" * 126, "device_secret": "x"}).sn
    with pytest.raises(ParleyError):
        parse_params(DeviceConnect, {"sn": "p_" + "d" * 127, "device_secret": "x"})


def test_answers_and_pushes_have_the_documented_shapes() -> None:
    assert ok("r1", {"ts": 1}) == {"req_id": "r1", "code": 0, "msg": "ok", "data": {"ts": 1}}
    with pytest.raises(BadRequest) as raised:
        parse_request("nope")
    error = raised.value.error
    assert failure(None, error) == {
        "req_id": None,
        "code": -91001,
        "msg": "not valid JSON",
        "reason": "MALFORMED_MESSAGE",
        "data": {},
    }
    assert push("on_update_authorize_status", {"open_id": "o", "status": 1}) == {
        "event": "on_update_authorize_status",
        "data": {"open_id": "o", "status": 1},
    }
    assert json.loads(encode({"msg": "签名"})) == {"msg": "签名"}
    assert "签名" in encode({"msg": "签名"})
