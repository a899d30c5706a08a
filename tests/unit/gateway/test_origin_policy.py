"""Which web origins may use the gateway (docs/web-sdk.md): loopback pages by default, a configured list
otherwise; the gateway's own pages and clients without an Origin always."""

from __future__ import annotations

import pytest

from services.gateway.web_routes import OriginPolicy

GATEWAY = "gw.example.com:8080"


@pytest.mark.parametrize(
    ("origin", "admitted"),
    [
        (None, True),
        ("http://127.0.0.1:5173", True),
        ("http://127.9.9.9", True),
        ("http://localhost:3000", True),
        ("http://[::1]:8000", True),
        ("http://gw.example.com:8080", True),
        ("https://app.example.com", False),
        ("http://127.0.0.1.evil.example", False),
        ("null", False),
        ("file://", False),
    ],
)
def test_by_default_pages_served_from_loopback(origin: str | None, admitted: bool) -> None:
    assert OriginPolicy(None).admits(origin, GATEWAY) is admitted


@pytest.mark.parametrize(
    ("origin", "admitted"),
    [
        ("https://app.example.com", True),
        ("https://APP.example.com/", True),
        ("https://app.example.com:8443", False),
        ("http://app.example.com", False),
        ("http://127.0.0.1:5173", False),
        ("http://gw.example.com:8080", True),
        (None, True),
    ],
)
def test_a_configured_list_is_exact(origin: str | None, admitted: bool) -> None:
    assert OriginPolicy(["https://app.example.com"]).admits(origin, GATEWAY) is admitted


def test_a_star_admits_every_web_origin_but_not_non_web_schemes() -> None:
    policy = OriginPolicy(["*"])
    assert policy.admits("https://anything.example", GATEWAY)
    assert not policy.admits("chrome-extension://abc", GATEWAY)
