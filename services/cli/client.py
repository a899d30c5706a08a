"""The CLI's HTTP client for a running platform's gateway: errors become one line and an exit code."""

from __future__ import annotations

import json
from typing import Any, BinaryIO, NoReturn

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:8080"


class Gateway:
    def __init__(self, url: str, token: str | None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30)
        self._url = url

    def call(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer; on an error answer, its code and message on stderr and exit 1."""
        try:
            response = self._client.request(method, path, json=body, params=params)
        except httpx.HTTPError as error:
            self._unreachable(error)
        self._check(response)
        return response.json() if response.content else None

    def download(self, path: str, into: BinaryIO) -> int:
        """Stream the answer's body into `into`; the bytes written. Errors as `call`."""
        written = 0
        try:
            with self._client.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                self._check(response)
                for chunk in response.iter_bytes():
                    into.write(chunk)
                    written += len(chunk)
        except httpx.HTTPError as error:
            self._unreachable(error)
        return written

    def _unreachable(self, error: httpx.HTTPError) -> NoReturn:
        typer.echo(f"parley: no Parley gateway answers at {self._url} ({type(error).__name__})", err=True)
        raise typer.Exit(2) from None

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            answer = response.json()
            message = f"{answer['msg']} (code {answer['code']}, {answer['reason']})"
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}"
        typer.echo(f"parley: {message}", err=True)
        raise typer.Exit(1)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))
