"""`parley app|sign|verify|licence|device`: the licence service through a running gateway."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.cli.client import DEFAULT_URL, Gateway, print_json

UrlOption = Annotated[
    str, typer.Option("--url", envvar="PARLEY_URL", help="The gateway of a running platform.")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="PARLEY_OPERATOR_TOKEN", help="Operator token, if one is set.")
]
BizName = Annotated[str, typer.Option("--biz-name", help="The app's bizName.")]
Sn = Annotated[str, typer.Option("--sn", help="Device sn: <ProductId>_<DeviceName>.")]
ModelId = Annotated[str, typer.Option("--model-id", help="The product's model_id.")]
LicenceKind = Annotated[str, typer.Option("--type", help="audio or video.")]

apps = typer.Typer(help="Call apps: bizName, appId, workspaceId and their RSA keys.", no_args_is_help=True)
licences = typer.Typer(help="Device licence pools.", no_args_is_help=True)
devices = typer.Typer(help="Device activation, registration and authorised users.", no_args_is_help=True)


@apps.command("create")
def app_create(
    name: Annotated[str, typer.Option("--name")], url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Create an app; prints its ids and the private key (shown once)."""
    app = Gateway(url, token).call("POST", "/v1/apps", body={"name": name})
    print_json({key: app[key] for key in ("bizName", "appId", "workspaceId", "privateKey")})


@apps.command("list")
def app_list(url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    print_json(Gateway(url, token).call("GET", "/v1/apps"))


@apps.command("show")
def app_show(biz_name: BizName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    print_json(Gateway(url, token).call("GET", f"/v1/apps/{biz_name}"))


@apps.command("rotate-key")
def app_rotate_key(biz_name: BizName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """A new key pair; signatures of the old key stop verifying."""
    _print_key(Gateway(url, token).call("POST", f"/v1/apps/{biz_name}/rotate-key"))


@apps.command("reveal-key")
def app_reveal_key(biz_name: BizName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """The app's current private key again (the seed's 查看密钥)."""
    _print_key(Gateway(url, token).call("POST", f"/v1/apps/{biz_name}/reveal-key"))


def _print_key(app: dict[str, Any]) -> None:
    print_json({key: app[key] for key in ("bizName", "appId", "workspaceId", "privateKey")})


@apps.command("delete")
def app_delete(biz_name: BizName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    Gateway(url, token).call("DELETE", f"/v1/apps/{biz_name}")


def sign(
    biz_name: BizName,
    uid: Annotated[str, typer.Option("--uid")],
    ttl: Annotated[str, typer.Option("--ttl", help="24h, 3d or 7d.")] = "24h",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """A temporary signature for a user of the app (seed 002 section 5.3)."""
    answer = Gateway(url, token).call(
        "POST", f"/v1/apps/{biz_name}/signatures", body={"uid": uid, "ttl": ttl}
    )
    print_json({"signature": answer["signature"], "expireTime": answer["expireTime"]})


def verify(
    biz_name: BizName,
    uid: Annotated[str, typer.Option("--uid")],
    signature: Annotated[str, typer.Option("--signature")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Exit 0 when the signature is valid; 1 with the reason otherwise."""
    answer = Gateway(url, token).call(
        "POST", f"/v1/apps/{biz_name}/signatures/verify", body={"uid": uid, "signature": signature}
    )
    print_json(answer)


@licences.command("add")
def licence_add(
    biz_name: BizName,
    model_id: ModelId,
    kind: LicenceKind,
    count: Annotated[int, typer.Option("--count")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Add licences of a type to a product's pool."""
    body = {"modelId": model_id, "type": kind, "count": count}
    print_json(Gateway(url, token).call("POST", f"/v1/apps/{biz_name}/licences", body=body))


@licences.command("list")
def licence_list(biz_name: BizName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    print_json(Gateway(url, token).call("GET", f"/v1/apps/{biz_name}/licences"))


@devices.command("activate")
def device_activate(
    biz_name: BizName,
    model_id: ModelId,
    sn: Sn,
    kind: LicenceKind,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Activate a device against its product's licence pool (idempotent)."""
    body = {"modelId": model_id, "sn": sn, "type": kind}
    print_json(Gateway(url, token).call("POST", f"/v1/apps/{biz_name}/devices", body=body))


@devices.command("ticket")
def device_ticket(biz_name: BizName, sn: Sn, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """A one-time snTicket for the device, valid 5 minutes."""
    print_json(Gateway(url, token).call("POST", f"/v1/apps/{biz_name}/devices/{sn}/tickets"))


@devices.command("register")
def device_register(
    sn: Sn,
    ticket: Annotated[str, typer.Option("--ticket", help="The snTicket.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Register the device with its snTicket; prints the device secret (shown once)."""
    print_json(Gateway(url, None).call("POST", f"/v1/devices/{sn}/registration", body={"snTicket": ticket}))


@devices.command("authorise")
def device_authorise(
    biz_name: BizName,
    sn: Sn,
    open_id: Annotated[str, typer.Option("--open-id")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Revoke instead.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """A user (open_id) authorises the device to call them, or revokes it."""
    path = f"/v1/apps/{biz_name}/devices/{sn}/users/{open_id}"
    print_json(Gateway(url, token).call("PUT", path, body={"authorised": not revoke}))


@devices.command("users")
def device_users(
    sn: Sn,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    limit: Annotated[int, typer.Option("--limit", help="At most 10.")] = 10,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Users who authorised the device, a page at a time, with the total."""
    print_json(
        Gateway(url, token).call("GET", f"/v1/devices/{sn}/users", params={"offset": offset, "limit": limit})
    )
