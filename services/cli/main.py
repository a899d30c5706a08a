"""The `parley` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import httpx
import typer
from parley_sdk import ProtocolError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from services.cli import billing_commands, licence_commands, recording_commands, webhook_commands
from services.cli.demo import report, run_demo
from services.cli.supervisor import Platform, PlatformOptions, Progress
from services.core.config import ServiceName, Settings
from services.core.db import create_engine
from services.core.embedded_broker import wait_for_broker
from services.core.errors import StartupError
from services.core.kafka_security import client_options
from services.core.migrations import migrating_services, upgrade_to_head
from services.core.topics import Topic, ensure_topics

app = typer.Typer(
    help="Parley: real-time audio and video calls for devices, phones and browsers.", no_args_is_help=True
)
app.add_typer(licence_commands.apps, name="app")
app.add_typer(licence_commands.licences, name="licence")
app.add_typer(licence_commands.devices, name="device")
app.add_typer(billing_commands.usage, name="usage")
app.add_typer(billing_commands.billing, name="billing")
app.add_typer(recording_commands.recordings, name="recordings")
app.command()(licence_commands.sign)
app.command()(licence_commands.verify)
app.add_typer(webhook_commands.webhooks, name="webhooks")
licence_commands.apps.command("webhook-secret")(webhook_commands.webhook_secret)
# Lines are never wrapped: the banner is read by people and by scripts waiting for "Health:".
console = Console(soft_wrap=True)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"parley {version('parley')}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Parley: real-time audio and video calls for devices, phones and browsers."""


UrlOption = Annotated[
    str, typer.Option("--url", envvar="PARLEY_URL", help="The gateway of a running platform.")
]


def _coloured(state: str, *, otherwise: str = "red") -> str:
    colour = "green" if state == "SERVING" else otherwise
    return f"[{colour}]{state}[/{colour}]"


def _status_table(statuses: dict[ServiceName, str]) -> Table:
    table = Table("service", "status", title="Waiting for the services to serve")
    for name in ServiceName:
        table.add_row(name.value, _coloured(statuses.get(name, "STARTING"), otherwise="yellow"))
    return table


def _live_progress(live: Live) -> Progress:
    def show(statuses: dict[ServiceName, str]) -> None:
        live.update(_status_table(statuses))

    return show


async def _run_platform(platform: Platform, live: Live | None) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    starting = asyncio.create_task(platform.start())
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        typer.echo("parley: stopped during start-up", err=True)
        return 130
    stop_wait.cancel()
    if live is not None:
        live.stop()
    starting.result()

    console.print(f"[bold]Parley is up[/bold] (data in {platform.data_dir})")
    console.print(f"  {'broker':<9} kafka  {platform.bootstrap_servers}")
    for service in platform.services:
        where = (
            f"http  {platform.http_url}  grpc {service.address}"
            if service.name is ServiceName.GATEWAY
            else (f"grpc  {service.address}")
        )
        console.print(f"  {service.name.value:<9} {where}  metrics {service.ops_url}/metrics")
    console.print(f"Health: {platform.http_url}/healthz   Logs: {platform.data_dir / 'logs'}   Ctrl-C stops.")

    while not stopping.is_set():
        for service in platform.exited_services():
            code = service.process.returncode
            typer.echo(f"parley: {service.name.value} exited (code {code}); see {service.log_path}", err=True)
        try:
            await asyncio.wait_for(stopping.wait(), timeout=1.0)
        except TimeoutError:
            pass
    console.print("Stopping…")
    platform.stop()
    console.print("Stopped.")
    return 0


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="State: databases, recordings, logs.")] = Path(".parley"),
    http_port: Annotated[int, typer.Option(help="The gateway's HTTP port.")] = 8080,
    grpc_port_base: Annotated[int, typer.Option(help="First of seven consecutive gRPC ports.")] = 50051,
    kafka_port: Annotated[int, typer.Option(help="Port of the embedded broker; 0 picks a free one.")] = 0,
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Use this Kafka cluster instead of the embedded broker.")
    ] = None,
    ops_port_base: Annotated[
        int,
        typer.Option(help="First of six consecutive ports for the services' /metrics; 0 picks free ones."),
    ] = 0,
) -> None:
    """Start the broker and all seven services on this machine; Ctrl-C stops them all."""
    # The broker's client logs every refused connection while the broker is still starting.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    options = PlatformOptions(
        data_dir=data_dir,
        http_port=http_port,
        grpc_port_base=grpc_port_base,
        kafka_port=kafka_port,
        kafka_bootstrap=kafka_bootstrap,
        ops_port_base=ops_port_base,
    )
    # The live table is for a person at a terminal; scripts reading the output get the banner alone.
    live = Live(_status_table({}), console=console, transient=True) if console.is_terminal else None
    platform = Platform(options, progress=_live_progress(live) if live is not None else None)
    if live is not None:
        live.start()
    message: str | None = None
    try:
        code = asyncio.run(_run_platform(platform, live))
    except StartupError as error:
        code = 2
        message = f"parley: {error}"
    finally:
        # Stopping twice is harmless: _run_platform stops it before the banner.
        if live is not None:
            live.stop()
    if message is not None:
        typer.echo(message, err=True)
    raise typer.Exit(code)


@app.command()
def migrate() -> None:
    """Bring every service's tables to their latest schema in PARLEY_DATABASE_URL (the chart's pre-install
    and pre-upgrade Job); the services also do it at start, which then finds nothing to do."""
    settings = Settings()

    async def run() -> list[str]:
        done = []
        for name in migrating_services():
            engine = create_engine(settings.database_url_for(name))
            try:
                await upgrade_to_head(engine, f"services.{name.value}", settings)
            finally:
                await engine.dispose()
            done.append(name.value)
        return done

    try:
        migrated = asyncio.run(run())
    except StartupError as error:
        typer.echo(f"parley: {error}", err=True)
        raise typer.Exit(2) from None
    for name in migrated:
        console.print(f"  {name:<9} at head")


@app.command()
def demo(
    url: UrlOption = "http://127.0.0.1:8080",
    seconds: Annotated[int, typer.Option(help="How long the call lasts (its time limit).")] = 20,
    data_dir: Annotated[
        Path,
        typer.Option(help="Data folder of the platform (to start one; its recordings)."),
    ] = Path(".parley"),
    grpc_port_base: Annotated[
        int, typer.Option(help="First of seven gRPC ports, for a platform the demo starts.")
    ] = 50051,
) -> None:
    """A doorbell calls a phone user through the Python SDK: app, device, call, recording, usage, webhooks."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        result = asyncio.run(run_demo(url.rstrip("/"), seconds, data_dir, grpc_port_base, console))
    except StartupError as error:
        typer.echo(f"parley: {error}", err=True)
        raise typer.Exit(2) from None
    except ProtocolError as error:
        typer.echo(f"parley demo: {error}", err=True)
        raise typer.Exit(1) from None
    report(result, console)


@app.command()
def topics(
    kafka_bootstrap: Annotated[str, typer.Option(help="The Kafka cluster.")],
    partitions: Annotated[int, typer.Option(help="Partitions of each new topic.")] = 3,
    replication_factor: Annotated[int, typer.Option(help="Copies of each new topic's partitions.")] = 1,
) -> None:
    """Create the catalogue's topics that do not exist yet (an init step for a real Kafka cluster).
    TLS and SASL as the services use them: PARLEY_KAFKA__SECURITY_PROTOCOL and the rest."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def create() -> list[str]:
        options = client_options(Settings().kafka)
        await wait_for_broker(kafka_bootstrap, timeout_s=15, client_options=options)
        return await ensure_topics(
            kafka_bootstrap,
            partitions=partitions,
            replication_factor=replication_factor,
            client_options=options,
        )

    try:
        created = asyncio.run(create())
    except StartupError as error:
        typer.echo(f"parley: {error}", err=True)
        raise typer.Exit(2) from None
    for name in Topic:
        console.print(f"  {name.value:<22} {'created' if name.value in created else 'exists'}")


@app.command()
def status(
    url: UrlOption = "http://127.0.0.1:8080",
    as_json: Annotated[
        bool, typer.Option("--json", help='Print the gateway\'s report as JSON: {"status", "services"}.')
    ] = False,
) -> None:
    """Report each service of a running platform; exit 1 unless all are SERVING."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/healthz", timeout=5)
        report = response.json()
    except (httpx.HTTPError, ValueError) as error:
        typer.echo(f"parley: no Parley gateway answers at {url} ({type(error).__name__})", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report))
        raise typer.Exit(0 if response.status_code == 200 else 1)
    table = Table("service", "status")
    for name, state in report["services"].items():
        table.add_row(name, _coloured(state))
    console.print(table)
    raise typer.Exit(0 if response.status_code == 200 else 1)


if __name__ == "__main__":
    app()
