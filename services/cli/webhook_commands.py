"""`parley webhooks ...` and `parley app webhook-secret`: the webhook dispatcher through a running gateway,
and `parley webhooks listen`, a local receiver for people developing against Parley."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.cli.client import DEFAULT_URL, Gateway, print_json
from services.cli.licence_commands import BizName, TokenOption, UrlOption

webhooks = typer.Typer(
    help="Webhook endpoints, deliveries and their attempts; a local receiver to develop against.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
EndpointId = Annotated[
    str, typer.Option("--endpoint-id", help="An endpoint id (see `parley webhooks endpoints`).")
]
console = Console(soft_wrap=True)


def _show(rows: list[dict[str, Any]], columns: list[str], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if row.get(column) is None else str(row.get(column)) for column in columns))
    console.print(table)


def webhook_secret(
    biz_name: BizName,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Make a new one; the old signs beside it for 24 h.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """The app's webhook signing secret (whsec_...), to verify callbacks with Standard Webhooks."""
    gateway = Gateway(url, token)
    path = f"/v1/apps/{biz_name}/webhook-secret"
    print_json(gateway.call("POST", f"{path}/rotate") if rotate else gateway.call("GET", path))


@webhooks.command("endpoints")
def endpoints(
    biz_name: BizName, as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """The app's endpoints: its two seed callback URLs and its CloudEvents endpoints."""
    rows = Gateway(url, token).call("GET", f"/v1/apps/{biz_name}/webhook-endpoints")
    for row in rows:
        row["eventTypes"] = " ".join(row["eventTypes"])
    _show(rows, ["endpointId", "kind", "url", "enabled", "disabledReason", "eventTypes"], as_json)


@webhooks.command("add-endpoint")
def add_endpoint(
    biz_name: BizName,
    endpoint_url: Annotated[str, typer.Option("--endpoint-url", help="Where to POST CloudEvents.")],
    event_types: Annotated[
        list[str], typer.Option("--event-type", help="A ce_type, e.g. parley.rooms.v1.CallEnded; repeat.")
    ],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Add a CloudEvents endpoint subscribed to event types of the topic catalogue."""
    print_json(
        Gateway(url, token).call(
            "POST",
            f"/v1/apps/{biz_name}/webhook-endpoints",
            body={"url": endpoint_url, "eventTypes": event_types},
        )
    )


@webhooks.command("enable")
def enable(
    biz_name: BizName, endpoint_id: EndpointId, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Enable an endpoint again (after a 410 disabled it)."""
    print_json(
        Gateway(url, token).call(
            "PATCH", f"/v1/apps/{biz_name}/webhook-endpoints/{endpoint_id}", body={"enabled": True}
        )
    )


@webhooks.command("remove-endpoint")
def remove_endpoint(
    biz_name: BizName, endpoint_id: EndpointId, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    Gateway(url, token).call("DELETE", f"/v1/apps/{biz_name}/webhook-endpoints/{endpoint_id}")


@webhooks.command("deliveries")
def deliveries(
    biz_name: BizName,
    status: Annotated[str, typer.Option("--status", help="pending, delivered or dead.")] = "",
    endpoint_id: Annotated[str, typer.Option("--endpoint-id")] = "",
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """The app's deliveries, newest first: status, last response, latency, next try."""
    params = {"status": status, "endpointId": endpoint_id, "limit": limit}
    rows = Gateway(url, token).call("GET", f"/v1/apps/{biz_name}/deliveries", params=params)
    columns = ["deliveryId", "eventType", "orderingKey", "status", "attempts", "httpStatus", "lastLatencyMs"]
    _show(rows, [*columns, "nextAttemptAt", "lastError"], as_json)


@webhooks.command("attempts")
def attempts(
    biz_name: BizName,
    delivery_id: Annotated[str, typer.Option("--delivery-id")],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """One delivery's attempts (and its body with --json)."""
    detail = Gateway(url, token).call("GET", f"/v1/apps/{biz_name}/deliveries/{delivery_id}")
    if as_json:
        print_json(detail)
        return
    _show(
        detail["attemptLog"], ["attempt", "startedAt", "outcome", "httpStatus", "latencyMs", "error"], False
    )


@webhooks.command("redeliver")
def redeliver(
    biz_name: BizName,
    delivery_id: Annotated[
        str, typer.Option("--delivery-id", help="One delivery; without it, every failed one.")
    ] = "",
    endpoint_id: Annotated[
        str, typer.Option("--endpoint-id", help="With --all-failed: only this endpoint's.")
    ] = "",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Try a failed delivery again, or every dead-lettered one of the app."""
    gateway = Gateway(url, token)
    if delivery_id:
        print_json(gateway.call("POST", f"/v1/apps/{biz_name}/deliveries/{delivery_id}/redeliver"))
    else:
        params = {"endpointId": endpoint_id}
        print_json(gateway.call("POST", f"/v1/apps/{biz_name}/deliveries/redeliver-failed", params=params))


@webhooks.command("test")
def send_test(
    biz_name: BizName, endpoint_id: EndpointId, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Queue a signed test event to an endpoint; `parley webhooks deliveries` shows how it went."""
    print_json(
        Gateway(url, token).call(
            "POST", f"/v1/apps/{biz_name}/webhook-test", body={"endpointId": endpoint_id}
        )
    )


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class Listener:
    """An ASGI app that verifies each request's Standard Webhooks signature, prints it, and answers as
    the seed asks ({bizRequestId, code: 0}); a request that does not verify gets 401."""

    def __init__(self, secret: str | None, *, echo: Any = typer.echo) -> None:
        self._webhook = Webhook(secret) if secret else None
        self._echo = echo

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        verdict = "unsigned check (no --secret)"
        status = 200
        if self._webhook is not None:
            try:
                self._webhook.verify(body, headers)
                verdict = "signature ok"
            except WebhookVerificationError as error:
                verdict, status = f"signature FAILED: {error}", 401
        try:
            payload = json.loads(body)
        except ValueError:
            payload = body.decode(errors="replace")
        when = datetime.now().strftime("%H:%M:%S")
        self._echo(
            f"{when} {scope['method']} {scope['path']} webhook-id={headers.get('webhook-id', '-')} {verdict}"
        )
        self._echo(json.dumps(payload, indent=2, ensure_ascii=False))
        answer: dict[str, Any] = {"code": 0}
        if isinstance(payload, dict) and "bizRequestId" in payload:
            answer["bizRequestId"] = payload["bizRequestId"]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


@webhooks.command("listen")
def listen(
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 9000,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    secret: Annotated[
        str | None,
        typer.Option("--secret", envvar="PARLEY_WEBHOOK_SECRET", help="whsec_...: verify signatures."),
    ] = None,
) -> None:
    """Receive callbacks on http://HOST:PORT/, verify their signatures, print them, answer code 0.

    Point an app at it (PATCH /v1/apps/{bizName} with roomStatusCallbackUrl) and allow-list the address on
    the dispatcher (PARLEY_WEBHOOKS__ALLOWED_TARGETS=127.0.0.1/32)."""
    typer.echo(f"parley: listening on http://{host}:{port}/ (Ctrl-C stops)")
    config = uvicorn.Config(Listener(secret), host=host, port=port, log_level="warning", lifespan="off")
    asyncio.run(uvicorn.Server(config).serve())
