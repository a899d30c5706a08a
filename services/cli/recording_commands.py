"""`parley recordings list|download|delete`: recording file management (seed 002 5.2) through a running
gateway's operator routes (docs/recording.md "File management")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from services.cli.client import DEFAULT_URL, Gateway, print_json
from services.cli.licence_commands import BizName, TokenOption, UrlOption

recordings = typer.Typer(help="Recording files: list, download, delete.", no_args_is_help=True)


@recordings.command("list")
def list_files(
    biz_name: BizName,
    start: Annotated[int, typer.Option(help="Recordings started from then (ms since the epoch).")] = 0,
    end: Annotated[int, typer.Option(help="Recordings started before then (ms since the epoch).")] = 0,
    record_id: Annotated[str, typer.Option("--record-id")] = "",
    offset: int = 0,
    limit: int = 20,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """An app's recording files, newest first, and how many there are."""
    params: dict[str, int | str] = {"start": start, "end": end, "offset": offset, "limit": limit}
    if record_id:
        params["recordId"] = record_id
    print_json(Gateway(url, token).call("GET", f"/v1/apps/{biz_name}/recordings", params=params))


@recordings.command("download")
def download(
    biz_name: BizName,
    file_id: Annotated[str, typer.Argument(help="The file's fileId (from `recordings list`).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The file to write; - for stdout.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Write a recording file's bytes."""
    gateway = Gateway(url, token)
    path = f"/v1/apps/{biz_name}/recordings/{file_id}/content"
    if output == "-":
        gateway.download(path, sys.stdout.buffer)
        return
    with Path(output).open("wb") as into:
        written = gateway.download(path, into)
    typer.echo(f"{output}: {written} bytes", err=True)


@recordings.command("delete")
def delete(
    biz_name: BizName,
    file_ids: Annotated[list[str], typer.Argument(help="One or more fileIds.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Delete files from storage and listing (all are checked before any goes)."""
    gateway = Gateway(url, token)
    if len(file_ids) == 1:
        print_json(gateway.call("DELETE", f"/v1/apps/{biz_name}/recordings/{file_ids[0]}"))
    else:
        print_json(
            gateway.call("POST", f"/v1/apps/{biz_name}/recordings/batch-delete", body={"fileIds": file_ids})
        )
