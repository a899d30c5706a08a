"""The `parley` command line."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from services.cli import licence_commands
from services.cli.supervisor import Platform, PlatformOptions, migrate
from services.core.config import ServiceName
from services.core.embedded_broker import wait_for_broker
from services.core.errors import StartupError
from services.core.processes import inherit_env
from services.core.topics import Topic, ensure_topics

app = typer.Typer(
    help="Parley: real-time audio and video calls for devices, phones and browsers.", no_args_is_help=True
)
app.add_typer(licence_commands.apps, name="app")
app.add_typer(licence_commands.licences, name="licence")
app.add_typer(licence_commands.devices, name="device")
app.command()(licence_commands.sign)
app.command()(licence_commands.verify)
# Lines are never wrapped: the banner is read by people and by scripts waiting for "Health:".
console = Console(soft_wrap=True)

UrlOption = Annotated[
    str, typer.Option("--url", envvar="PARLEY_URL", help="The gateway of a running platform.")
]


async def _run_platform(platform: Platform) -> int:
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
    starting.result()

    console.print(f"[bold]Parley is up[/bold] (data in {platform.data_dir})")
    console.print(f"  {'broker':<9} kafka  {platform.bootstrap_servers}")
    for service in platform.services:
        where = (
            f"http  {platform.http_url}  grpc {service.address}"
            if service.name is ServiceName.GATEWAY
            else (f"grpc  {service.address}")
        )
        console.print(f"  {service.name.value:<9} {where}")
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
) -> None:
    """Start the broker and all seven services on this machine; Ctrl-C stops them all."""
    # The broker's client logs every refused connection while the broker is still starting.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    platform = Platform(
        PlatformOptions(
            data_dir=data_dir,
            http_port=http_port,
            grpc_port_base=grpc_port_base,
            kafka_port=kafka_port,
            kafka_bootstrap=kafka_bootstrap,
        )
    )
    try:
        code = asyncio.run(_run_platform(platform))
    except StartupError as error:
        typer.echo(f"parley: {error}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command()
def topics(
    kafka_bootstrap: Annotated[str, typer.Option(help="The Kafka cluster.")],
    partitions: Annotated[int, typer.Option(help="Partitions of each new topic.")] = 3,
) -> None:
    """Create the catalogue's topics that do not exist yet (an init step for a real Kafka cluster)."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def create() -> list[str]:
        await wait_for_broker(kafka_bootstrap, timeout_s=15)
        return await ensure_topics(kafka_bootstrap, partitions=partitions)

    try:
        created = asyncio.run(create())
    except StartupError as error:
        typer.echo(f"parley: {error}", err=True)
        raise typer.Exit(2) from None
    for name in Topic:
        console.print(f"  {name.value:<22} {'created' if name.value in created else 'exists'}")


@app.command("migrate")
def migrate_command(
    data_dir: Annotated[Path, typer.Option(help="State: databases, recordings, logs.")] = Path(".parley"),
) -> None:
    """Bring every service's database to its schema, once, under a lock (`parley up` does it first).
    The services' databases are those their PARLEY_* settings name (SQLite files in the data folder by
    default)."""
    # Development unless the environment says otherwise, as `parley up`.
    env = {"PARLEY_ENVIRONMENT": "development", **inherit_env(PARLEY_DATA_DIR=str(data_dir))}
    try:
        migrate(env, data_dir / "logs")
    except StartupError as error:
        typer.echo(f"parley: {error}", err=True)
        raise typer.Exit(2) from None
    console.print("Migrated.")


@app.command()
def status(url: UrlOption = "http://127.0.0.1:8080") -> None:
    """Report each service of a running platform; exit 1 unless all are SERVING."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/healthz", timeout=5)
        report = response.json()
    except (httpx.HTTPError, ValueError) as error:
        typer.echo(f"parley: no Parley gateway answers at {url} ({type(error).__name__})", err=True)
        raise typer.Exit(2) from None
    table = Table("service", "status")
    for name, state in report["services"].items():
        table.add_row(name, f"[green]{state}[/green]" if state == "SERVING" else f"[red]{state}[/red]")
    console.print(table)
    raise typer.Exit(0 if response.status_code == 200 else 1)


if __name__ == "__main__":
    app()
