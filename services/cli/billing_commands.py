"""`parley usage` and `parley billing`: usage statistics, price plans, statements and prepaid accounts
through a running gateway (docs/billing.md). Tables by default, the gateway's JSON with `--json`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.cli.client import DEFAULT_URL, Gateway, print_json
from services.cli.licence_commands import BizName, TokenOption, UrlOption

RangeOption = Annotated[str, typer.Option("--range", help="today, yesterday, 7d or 30d.")]
DateOption = Annotated[str, typer.Option(help="YYYY-MM-DD (with the other one instead of --range).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the gateway's JSON.")]

usage = typer.Typer(
    help="Usage statistics: call minutes by tier, online time, rooms, users.", no_args_is_help=True
)
billing = typer.Typer(help="Price plans, monthly statements and prepaid accounts.", no_args_is_help=True)
console = Console(soft_wrap=True)

TIERS = ("audio", "360P", "540P", "720P", "1080P")
COUNTS = (
    "onlineMs", "publishedStreamMs", "subscribedStreamMs", "rooms", "peakRooms",
    "onlineUsers", "callUsers", "peakOnlineUsers", "peakCallUsers", "billableMinutes",
)  # fmt: skip


def _columns() -> list[str]:
    return [f"call {tier} ms" for tier in TIERS] + list(COUNTS)


def _row(figures: dict[str, Any]) -> list[str]:
    return [str(figures["callMs"][tier]) for tier in TIERS] + [str(figures[name]) for name in COUNTS]


def _usage(
    kind: str, biz_name: str, range_name: str, start: str, end: str, url: str, token: str | None
) -> Any:
    params = {"range": range_name, "start": start, "end": end}
    if not (start or end or range_name):
        params["range"] = "today"
    return Gateway(url, token).call("GET", f"/v1/apps/{biz_name}/usage/{kind}", params=params)


@usage.command("overview")
def usage_overview(
    biz_name: BizName,
    range_name: RangeOption = "",
    start: DateOption = "",
    end: DateOption = "",
    json_out: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """The figures of a span of days (distinct users and peaks over the whole span)."""
    answer = _usage("overview", biz_name, range_name, start, end, url, token)
    if json_out:
        print_json(answer)
        return
    table = Table("figure", "value", title=f"{answer['bizName']} {answer['start']} … {answer['end']}")
    for name, value in zip(_columns(), _row(answer), strict=True):
        table.add_row(name, value)
    console.print(table)


def _days_table(answer: dict[str, Any], *, detail: bool) -> Table:
    table = Table("date", *_columns(), *(("closed", "adjustments") if detail else ()),
                  title=f"{answer['bizName']} {answer['start']} … {answer['end']}")  # fmt: skip
    for day in answer["days"]:
        extra = (str(day["closed"]).lower(), str(len(day["adjustments"]))) if detail else ()
        table.add_row(day["date"], *_row(day), *extra)
    return table


def _days_command(kind: str, *, detail: bool, doc: str) -> None:
    """`parley usage trend` and `parley usage detail`: the same options, a table of days each."""

    def command(
        biz_name: BizName,
        range_name: RangeOption = "7d",
        start: DateOption = "",
        end: DateOption = "",
        json_out: JsonOption = False,
        url: UrlOption = DEFAULT_URL,
        token: TokenOption = None,
    ) -> None:
        answer = _usage(kind, biz_name, "" if start or end else range_name, start, end, url, token)
        print_json(answer) if json_out else console.print(_days_table(answer, detail=detail))

    command.__doc__ = doc
    usage.command(kind)(command)


_days_command("trend", detail=False, doc="The figures of each day.")
_days_command(
    "detail",
    detail=True,
    doc="Each day's figures, whether the day is closed, and the adjustments late usage made to it.",
)


@billing.command("plan")
def billing_plan(
    biz_name: BizName,
    currency: Annotated[str | None, typer.Option(help="Set: ISO 4217 code, e.g. USD.")] = None,
    prices: Annotated[
        str | None,
        typer.Option(help="Set: minor units per minute for audio,360P,540P,720P,1080P, e.g. 1,2,3,4,6."),
    ] = None,
    time_zone: Annotated[
        str | None, typer.Option(help="Set: the IANA zone the app's days are counted in.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Show the app's price plan, or change what is given."""
    gateway = Gateway(url, token)
    plan = gateway.call("GET", f"/v1/apps/{biz_name}/price-plan")
    if currency or prices or time_zone:
        if prices:
            values = prices.split(",")
            if len(values) != len(TIERS) or not all(value.strip().isdigit() for value in values):
                typer.echo("parley: --prices takes five whole numbers: audio,360P,540P,720P,1080P", err=True)
                raise typer.Exit(2)
            plan["prices"] = dict(zip(TIERS, (int(value) for value in values), strict=True))
        plan["currency"] = currency or plan["currency"]
        plan["timeZone"] = time_zone or plan["timeZone"]
        plan = gateway.call("PUT", f"/v1/apps/{biz_name}/price-plan", body=plan)
    print_json(plan)


@billing.command("account")
def billing_account(
    biz_name: BizName,
    mode: Annotated[str | None, typer.Option(help="Set: postpaid or prepaid.")] = None,
    unit: Annotated[str, typer.Option(help="With --mode prepaid: money or minutes.")] = "money",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Show the account (balance and every entry), or make it post-paid or prepaid."""
    gateway = Gateway(url, token)
    if mode:
        print_json(gateway.call("PUT", f"/v1/apps/{biz_name}/account", body={"mode": mode, "unit": unit}))
    else:
        print_json(gateway.call("GET", f"/v1/apps/{biz_name}/account"))


@billing.command("top-up")
def billing_top_up(
    biz_name: BizName,
    amount: Annotated[int, typer.Option(help="Minor units of money, or milliseconds for a minute quota.")],
    top_up_id: Annotated[str, typer.Option("--id", help="Makes a retried top-up count once.")] = "",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Add to a prepaid balance; an app in arrears is served again once its balance is positive."""
    body = {"amount": amount, "topUpId": top_up_id}
    print_json(Gateway(url, token).call("POST", f"/v1/apps/{biz_name}/account/top-ups", body=body))


@billing.command("statement")
def billing_statement(
    biz_name: BizName,
    month: Annotated[str, typer.Option(help="YYYY-MM.")],
    json_out: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """The month's statement: call time by tier at the plan's prices, and adjustments for late usage."""
    answer = Gateway(url, token).call("GET", f"/v1/apps/{biz_name}/statements/{month}")
    if json_out:
        print_json(answer)
        return
    final = "final" if answer["final"] else "open"
    table = Table("tier", "call ms", "minutes", "per minute", "amount",
                  title=f"{answer['bizName']} {answer['month']} ({answer['currency']}, {final})")  # fmt: skip
    for line in answer["lines"]:
        table.add_row(
            line["tier"], *(str(line[k]) for k in ("callMs", "minutes", "pricePerMinute", "amount"))
        )
    for item in answer["adjustments"]:
        table.add_row(
            f"{item['tier']} (late, {item['date']})", str(item["callMs"]), "", "", str(item["amount"])
        )
    table.add_row("total", "", "", "", str(answer["total"]))
    console.print(table)
