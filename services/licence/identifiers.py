"""Validation of the identifiers users and devices present: uid, device sn, model_id, open_id.

Where the seeds are silent about a format, the rule here is Parley's decision, chosen so that every
identifier the seeds' products hand out passes and nothing that could confuse a log line, a URL path or
the signature plaintext does:

- uid: the seed's rule (002 section 4 and 6.3.2): English letters, digits and underscores, at most 128.
- sn: `<ProductId>_<DeviceName>` (000 activateVoipLicenseV2), at most 128 bytes (000: 9800001). 000 says
  an sn can contain illegal characters (9800002) but not which are legal. Parley accepts a ProductId of
  letters and digits, the first underscore as the separator, and a DeviceName of letters, digits and
  `_ - . : @`, the characters device makers put in serial numbers and MAC addresses. An sn that is not
  of that shape is also 9800002: the device SDK has no other code for a bad sn.
- model_id: 000 only says the check can fail (9800003). Parley accepts 1-128 letters, digits, `_` and
  `-`, the alphabet of the seed's product ids (Base64url).
- open_id: the seeds give no format. Parley accepts 1-128 letters, digits, `_` and `-` (WeChat open_ids
  are Base64url); anything else is -7 "openId 错误".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.licence.errors import (
    MODEL_ID_INVALID,
    OPEN_ID_MALFORMED,
    SN_ILLEGAL_CHARACTERS,
    SN_TOO_LONG,
    UID_INVALID,
)

MAX_UID_CHARS = 128
MAX_SN_BYTES = 128
MAX_ID_CHARS = 128

# Explicit ASCII classes: `\w` would also accept letters of every other script.
_UID = re.compile(rf"[A-Za-z0-9_]{{1,{MAX_UID_CHARS}}}")
_SN = re.compile(r"(?P<product_id>[A-Za-z0-9]+)_(?P<device_name>[A-Za-z0-9_.:@-]+)")
# model_id and open_id share the Base64url alphabet.
_URL_SAFE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}")


@dataclass(frozen=True)
class DeviceSn:
    product_id: str
    device_name: str

    def __str__(self) -> str:
        return f"{self.product_id}_{self.device_name}"


def validate_uid(uid: str) -> str:
    if _UID.fullmatch(uid) is None:
        raise UID_INVALID()
    return uid


def parse_sn(sn: str) -> DeviceSn:
    # The seed counts bytes, not characters: check the UTF-8 length before the alphabet.
    size = len(sn.encode("utf-8"))
    if size > MAX_SN_BYTES:
        raise SN_TOO_LONG(f"sn is {size} bytes long; at most {MAX_SN_BYTES} are allowed")
    match = _SN.fullmatch(sn)
    if match is None:
        raise SN_ILLEGAL_CHARACTERS(
            "sn must be <ProductId>_<DeviceName>: a ProductId of letters and digits, "
            "and a DeviceName of letters, digits and _ - . : @"
        )
    return DeviceSn(match["product_id"], match["device_name"])


def validate_model_id(model_id: str) -> str:
    if _URL_SAFE_ID.fullmatch(model_id) is None:
        raise MODEL_ID_INVALID("model_id must be 1 to 128 letters, digits, _ or -")
    return model_id


def validate_open_id(open_id: str) -> str:
    if _URL_SAFE_ID.fullmatch(open_id) is None:
        raise OPEN_ID_MALFORMED("open_id must be 1 to 128 letters, digits, _ or -")
    return open_id
