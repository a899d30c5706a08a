"""Janus 1.1.2 (Debian's package) as the reference SFU: started with a configuration of its own on
127.0.0.1 (VideoRoom and the HTTP transport only), and a minimal client of its HTTP API."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from services.core.embedded_broker import free_port

HERE = Path(__file__).resolve().parent
PLUGINS = "/usr/lib/x86_64-linux-gnu/janus"


def install() -> None:
    subprocess.run([str(HERE.parent / "install_janus.sh")], check=True)


def build_shim(folder: Path) -> Path:
    """Compile loopback_shim.c for this machine; the .so lives only in the run's temporary folder."""
    library = folder / "loopback_shim.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(HERE / "loopback_shim.c"), "-ldl"],
        check=True,
    )
    return library


def write_config(folder: Path, http_port: int, rtp_ports: tuple[int, int]) -> Path:
    plugins = Path(PLUGINS)
    keep_plugin, keep_transport = "libjanus_videoroom.so", "libjanus_http.so"
    disabled_plugins = ",".join(p.name for p in (plugins / "plugins").glob("*.so") if p.name != keep_plugin)
    disabled_transports = ",".join(
        p.name for p in (plugins / "transports").glob("*.so") if p.name != keep_transport
    )
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{plugins / "plugins"}"
    transports_folder = "{plugins / "transports"}"
    events_folder = "{plugins / "events"}"
    loggers_folder = "{plugins / "loggers"}"
    debug_level = 3
    session_timeout = 0
    server_name = "parley-bench"
}}
media: {{
    rtp_port_range = "{rtp_ports[0]}-{rtp_ports[1]}"
}}
nat: {{
    ice_enforce_list = "lo"
    ice_lite = false
    full_trickle = false
}}
plugins: {{
    disable = "{disabled_plugins}"
}}
transports: {{
    disable = "{disabled_transports}"
}}
events: {{
    broadcast = false
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
"""
    )
    (folder / "janus.transport.http.jcfg").write_text(
        f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {http_port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
"""
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return folder / "janus.jcfg"


def start(folder: Path, http_port: int, cpus: set[int]) -> subprocess.Popen[bytes]:
    if shutil.which("janus") is None:
        install()
    shim = build_shim(folder)
    config = write_config(folder, http_port, (40000, 49999))
    env = dict(os.environ, LD_PRELOAD=str(shim))
    log = (folder / "janus.log").open("wb")
    process = subprocess.Popen(
        ["janus", "-C", str(config), "-F", str(folder)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            # The folder is temporary: say why here, before it goes.
            tail = (folder / "janus.log").read_text(errors="replace").splitlines()[-15:]
            raise SystemExit("janus exited during start-up:\n" + "\n".join(tail))
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/janus/info", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("janus did not answer on its HTTP port")


def start_on_free_port(folder: Path, cpus: set[int]) -> tuple[subprocess.Popen[bytes], int]:
    """`start` on a free port; the process and its HTTP port. Once in a while Janus exited at start-up
    here, its log gone with the run's folder; a fresh port and a second try cost little next to a run."""
    for attempt in range(3):
        port = free_port()
        try:
            return start(folder, port, cpus), port
        except SystemExit as error:
            print(f"janus start attempt {attempt + 1} failed: {error}", file=sys.stderr)
    raise SystemExit("janus did not start")


class JanusError(RuntimeError):
    pass


class JanusSession:
    """One Janus session over the HTTP transport; plugin events are long-polled and matched to their
    request by transaction; `on_event` hears the others (a room's notifications)."""

    def __init__(self, base_url: str, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=30)
        self._on_event = on_event
        self._transactions = (f"t{n}" for n in itertools.count())
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._session = 0
        self._poller: asyncio.Task[None] | None = None

    async def open(self) -> None:
        reply = await self._request("/janus", {"janus": "create"})
        self._session = int(reply["data"]["id"])
        self._poller = asyncio.create_task(self._poll())

    async def _request(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body, transaction=next(self._transactions))
        reply: dict[str, Any] = (await self._http.post(path, json=body)).json()
        if reply.get("janus") == "error":
            raise JanusError(str(reply["error"]))
        return reply

    async def _poll(self) -> None:
        while True:
            try:
                response = await self._http.get(f"/janus/{self._session}", params={"maxev": 10})
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            events = response.json()
            for event in events if isinstance(events, list) else [events]:
                future = self._pending.pop(str(event.get("transaction")), None)
                if future is not None and not future.done():
                    future.set_result(event)
                elif future is None and self._on_event is not None:
                    self._on_event(event)

    async def attach(self) -> int:
        reply = await self._request(
            f"/janus/{self._session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )
        return int(reply["data"]["id"])

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A VideoRoom request; synchronous ones answer at once, the rest with an event (and JSEP)."""
        transaction = next(self._transactions)
        request: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            request["jsep"] = jsep
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        reply: dict[str, Any] = (
            await self._http.post(f"/janus/{self._session}/{handle}", json=request)
        ).json()
        if reply.get("janus") == "ack":
            reply = await asyncio.wait_for(future, 20)
        else:
            self._pending.pop(transaction, None)
        if reply.get("janus") == "error":
            raise JanusError(str(reply["error"]))
        data = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(str(data))
        return reply

    async def detach(self, handle: int) -> None:
        try:
            await self._request(f"/janus/{self._session}/{handle}", {"janus": "detach"})
        except JanusError:
            pass

    async def close(self) -> None:
        try:
            await self._request(f"/janus/{self._session}", {"janus": "destroy"})
        except (JanusError, httpx.HTTPError):
            pass
        if self._poller is not None:
            self._poller.cancel()
        await self._http.aclose()
