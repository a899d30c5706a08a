"""The platform an integration test runs on: a Tansu broker and the services the test names, with real
gRPC, real uvicorn and a data folder of their own; modelled on Temporal's `testing` package.

    async with start_platform(tmp_path, ServiceName.LICENCE, ServiceName.ROOMS, ServiceName.RELAY,
                              ServiceName.GATEWAY, ServiceName.GATEWAY,
                              settings={"rooms": {"session_grace_s": 2.0}}) as platform:
        platform.ws_url                   # the first gateway's WebSocket URL (platform.gateways: all)
        platform.licence                  # a LicenceService stub; platform.channel(name) for any other
        facts = await platform.record([Topic.ROOM], [events_pb2.RoomCreated])
        await facts.wait_for(room_id, "RoomCreated")

What it starts:
- A broker of its own (`platform.kafka`, 0.3 s to start): services consume with fixed group ids, and two
  platforms alive at once on one broker would split each group's partitions between them. `kafka=`
  shares a broker instead (the session's `kafka` fixture) when a test wants that.
- Each service named once per instance, in this process by default (a `ServiceRuntime` each, as
  `python -m services.<name>` would build it, but with its own tracer provider): quick to start, and a
  test can reach into what the service's `app.build` returned (`platform["rooms"].built`).
- `Instance(name, process=True)` runs that one as a real OS process (`python -m services.<name>` with
  `PARLEY_*` variables, log in `<data_dir>/logs/<key>.log`), for tests that SIGKILL a service and start it
  again: `await platform.kill("billing")`, `await platform.restart("billing")`.
- Settings: loopback listeners and free ports, licence and webhooks master keys, ICE candidates on
  127.0.0.0/8; `settings=` is laid over them for every instance, `Instance(settings=)` for that instance
  only (nested mappings, merged key by key). Databases are SQLite files in the data folder unless
  `database_url` is given (`tests/postgres.py`'s `fresh_database_url` makes one in a fresh PostgreSQL schema).
- A second instance of a service (two gateways, two relays) gets a gRPC port of its own and the key
  `<name>-2`, `<name>-3`, ...; the other services reach the first one. `await platform.start(Instance(...))`
  adds one during a test, `await platform.stop(key)` stops one early.
Everything started is stopped in reverse order when the block ends, also when the test failed.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import logging
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import grpc
from faststream.kafka import KafkaBroker
from google.protobuf.message import Message
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from parley.licence.v1.licence_pb2_grpc import LicenceServiceStub
from pydantic import BaseModel, SecretStr

from services.core.config import GrpcEndpoints, ServiceName, Settings
from services.core.embedded_broker import LOOPBACK, EmbeddedBroker, free_port
from services.core.events import Envelope, EventConsumer, EventPublisher, create_broker
from services.core.processes import inherit_env, python_module, spawn, stop, tail
from services.core.rpc import check_health
from services.core.service import ServiceRuntime
from services.core.topics import Topic, ensure_topics

MASTER_KEY = base64.b64encode(b"p" * 32).decode()
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

Stub = TypeVar("Stub")


@dataclass(frozen=True)
class Instance:
    """One service instance to start; a plain `ServiceName` means `Instance(name)`."""

    name: ServiceName
    # Laid over the platform's settings for this instance only, e.g. {"relay": {"relay_id": "relay-a"}}.
    settings: Mapping[str, Any] = field(default_factory=dict)
    # A real OS process (`python -m services.<name>`), for a test to kill and restart.
    process: bool = False
    # How the test names it; by default the service's name, then `<name>-2`, `<name>-3`, ...
    key: str | None = None
    # A process that is not waited for to serve: a standby room manager serves only once it leads
    # (`Platform.until_serving` waits for it).
    standby: bool = False
    # A process started under this command, e.g. `ip netns exec <namespace>`: a room manager in a network
    # namespace the test made, to cut it off.
    command_prefix: tuple[str, ...] = ()


@dataclass
class RunningService:
    key: str
    name: ServiceName
    settings: Settings
    # In this process: the runtime and what the service's `app.build` returned (the gateway's HTTP server,
    # the room manager, the relay, ...).
    runtime: ServiceRuntime | None = None
    built: Any = None
    # As an OS process: the process, the environment it was started with, and its log.
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    stopped: bool = False
    standby: bool = False
    command_prefix: tuple[str, ...] = ()

    @property
    def grpc_address(self) -> str:
        return self.settings.grpc.address_of(self.name)

    @property
    def http_port(self) -> int:
        if self.name is not ServiceName.GATEWAY:
            raise AttributeError(f"{self.key} serves no HTTP")
        # In this process the server was asked for port 0: the port it bound is known once it started.
        return int(self.built.port) if self.runtime is not None else self.settings.gateway.http_port

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/ws/v1"


class Facts:
    """Events read from topics, in arrival order with their envelopes, grouped by a key taken from each
    event (by default its call_id, record_id or room_id: the first that is set)."""

    def __init__(self, key: Callable[[Message], str] | None = None, timeout_s: float = 20) -> None:
        self._key = key or _default_key
        self._timeout_s = timeout_s
        self._by_key: dict[str, list[tuple[Message, Envelope]]] = {}

    async def record(self, event: Message, envelope: Envelope) -> None:
        self._by_key.setdefault(self._key(event), []).append((event, envelope))

    def of(self, key: str) -> list[tuple[Message, Envelope]]:
        return list(self._by_key.get(key, []))

    def events(self, key: str) -> list[Any]:
        return [event for event, _ in self._by_key.get(key, [])]

    def types(self, key: str) -> list[str]:
        return [type(event).__name__ for event in self.events(key)]

    def values(self, key: str, field_name: str) -> list[Any]:
        return [getattr(event, field_name) for event in self.events(key)]

    async def wait_for(self, key: str, type_name: str | None = None, **fields: Any) -> Any:
        """The first event under `key` of that type (by class name) and with those field values."""
        async with asyncio.timeout(self._timeout_s):
            while True:
                for event in self.events(key):
                    if type_name in (None, type(event).__name__) and all(
                        getattr(event, name) == value for name, value in fields.items()
                    ):
                        return event
                await asyncio.sleep(0.05)


def _default_key(event: Message) -> str:
    keys = (getattr(event, name, "") for name in ("call_id", "record_id", "room_id"))
    return str(next((key for key in keys if key), ""))


@asynccontextmanager
async def recording_facts(
    kafka: str,
    topics: Iterable[Topic],
    event_types: Iterable[type[Message]],
    *,
    key: Callable[[Message], str] | None = None,
    timeout_s: float = 20,
) -> AsyncIterator[Facts]:
    """`Facts` of every event of `event_types` on `topics`, read by a consumer group of its own;
    `timeout_s` is how long `wait_for` waits."""
    facts = Facts(key, timeout_s)
    broker: KafkaBroker = create_broker(kafka, client_id="test-facts", tracer_provider=TracerProvider())
    consumer = EventConsumer(broker, list(topics), group_id=f"test-facts-{uuid.uuid4()}", max_wait_ms=50)
    for event_type in event_types:
        consumer.on(event_type)(facts.record)
    await broker.start()
    try:
        yield facts
    finally:
        await broker.stop()


async def publish_fact(kafka: str, topic: Topic, event: Message, *, key: str, source: ServiceName) -> None:
    """Publish one event as the service `source` would (its CloudEvents source), from outside it: a test
    standing in for a service it does not start."""
    broker = create_broker(kafka, client_id=f"test-{source.value}", tracer_provider=TracerProvider())
    await broker.connect()
    try:
        await EventPublisher(broker, source=f"//parley/{source.value}").publish(topic, event, key=key)
    finally:
        await broker.stop()


class Platform:
    def __init__(self, kafka: str, data_dir: Path, base: dict[str, Any], span_exporter: SpanExporter | None):
        self.kafka = kafka
        self.data_dir = data_dir
        self._base = base
        self._span_exporter = span_exporter
        self._services: dict[str, RunningService] = {}
        # The newest channel to each address; all of them, to close at the end.
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._all_channels: list[grpc.aio.Channel] = []
        self._exit = AsyncExitStack()

    # What the services are and where.

    @property
    def settings(self) -> Settings:
        """The settings every instance shares (before its own overrides)."""
        return Settings(**self._base)

    @property
    def endpoints(self) -> GrpcEndpoints:
        return self.settings.grpc

    def __getitem__(self, key: str | ServiceName) -> RunningService:
        return self._services[str(key)]

    @property
    def gateways(self) -> list[RunningService]:
        return [s for s in self._services.values() if s.name is ServiceName.GATEWAY and not s.stopped]

    @property
    def ws_url(self) -> str:
        return self.gateways[0].ws_url

    @property
    def http_url(self) -> str:
        return self.gateways[0].http_url

    def channel(self, key: str | ServiceName) -> grpc.aio.Channel:
        """A channel to that instance (closed with the platform). After a restart this is a new channel:
        an old one may still be backing off from the refused connections of the restart."""
        if str(key) in self._services:
            address = self[key].grpc_address
        else:
            address = self.endpoints.address_of(ServiceName(key))
        if address not in self._channels:
            self._channels[address] = grpc.aio.insecure_channel(address)
            self._all_channels.append(self._channels[address])
        return self._channels[address]

    def stub(self, stub_class: Callable[[grpc.aio.Channel], Stub], key: str | ServiceName) -> Stub:
        return stub_class(self.channel(key))

    @property
    def licence(self) -> LicenceServiceStub:
        return self.stub(LicenceServiceStub, ServiceName.LICENCE)

    async def record(
        self,
        topics: Iterable[Topic],
        event_types: Iterable[type[Message]],
        *,
        key: Callable[[Message], str] | None = None,
        timeout_s: float = 20,
    ) -> Facts:
        """Start recording those events (see `recording_facts`); the recording stops with the platform."""
        facts = recording_facts(self.kafka, topics, event_types, key=key, timeout_s=timeout_s)
        return await self._exit.enter_async_context(facts)

    # Starting and stopping.

    async def start(self, *instances: ServiceName | Instance) -> list[RunningService]:
        """Start more instances: services that migrate a database one at a time (Alembic's migration
        context is global to a process), then the rest together."""
        planned = [self._plan(i if isinstance(i, Instance) else Instance(i)) for i in instances]
        migrating = [s for s in planned if s.runtime is not None and _has_migrations(s.name)]
        for service in migrating:
            await self._start(service)
        await asyncio.gather(*(self._start(s) for s in planned if s not in migrating))
        return planned

    async def consumers_joined(self, *keys: str | ServiceName) -> None:
        """Return once these in-process services' consumers have joined their groups."""
        await asyncio.gather(*(self._runtime(key).consumers_joined() for key in keys))

    async def stop(self, key: str | ServiceName) -> None:
        """Stop an instance (drain and stop; SIGTERM for a process); nothing if it is stopped already."""
        service = self[key]
        if service.stopped:
            return
        service.stopped = True
        if service.runtime is not None:
            await service.runtime.stop()
        elif service.process is not None:
            await asyncio.to_thread(stop, service.process, timeout_s=STOP_TIMEOUT_S)

    async def kill(self, key: str | ServiceName) -> None:
        """SIGKILL a service started with `process=True`: no drain, nothing flushed."""
        process = self[key].process
        if process is None:
            raise TypeError(f"{key} runs in this process; start it with Instance(..., process=True)")
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        self[key].stopped = True

    async def restart(self, key: str | ServiceName) -> RunningService:
        """Start a stopped or killed service again, same settings, same data, same ports."""
        service = self[key]
        await self.stop(key)
        self._channels.pop(service.grpc_address, None)
        if service.runtime is not None:
            service.runtime, service.built = self._build(service.name, service.settings)
        await self._start(service)
        return service

    def _plan(self, instance: Instance) -> RunningService:
        taken = sum(1 for s in self._services.values() if s.name is instance.name)
        key = instance.key or (instance.name.value if taken == 0 else f"{instance.name.value}-{taken + 1}")
        if key in self._services:
            raise ValueError(f"{key} is started already")
        own: dict[str, Any] = {}
        if taken:
            own["grpc"] = {instance.name.value: f"127.0.0.1:{free_port()}"}
        if instance.process and instance.name is ServiceName.GATEWAY:
            own["gateway"] = {"http_port": free_port()}
        merged = _merge(_merge(self._base, own), instance.settings)
        service = RunningService(
            key,
            instance.name,
            Settings(**merged),
            standby=instance.standby,
            command_prefix=instance.command_prefix,
        )
        if instance.process:
            (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
            service.env = inherit_env(**_as_env(merged))
            service.log_path = self.data_dir / "logs" / f"{key}.log"
        else:
            service.runtime, service.built = self._build(instance.name, service.settings)
        self._services[key] = service
        return service

    def _build(self, name: ServiceName, settings: Settings) -> tuple[ServiceRuntime, Any]:
        runtime = ServiceRuntime(name, settings, span_exporter=self._span_exporter, set_global_tracing=False)
        return runtime, importlib.import_module(f"services.{name.value}.app").build(runtime)

    async def _start(self, service: RunningService) -> None:
        service.stopped = False
        if service.runtime is not None:
            await service.runtime.start()
            return
        assert service.log_path is not None
        module = python_module(f"services.{service.name.value}")
        service.process = spawn(
            [*service.command_prefix, *module], env=service.env, log_path=service.log_path
        )
        if not service.standby:
            await self._wait_until_serving(service)

    async def until_serving(self, key: str | ServiceName) -> None:
        """Return once a service started as a process serves (a standby, once it took over)."""
        await self._wait_until_serving(self[key])

    async def _wait_until_serving(self, service: RunningService) -> None:
        assert service.process is not None and service.log_path is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        async with grpc.aio.insecure_channel(service.grpc_address) as channel:
            while await check_health(channel, timeout_s=1.0) != "SERVING":
                if service.process.poll() is not None:
                    reason = tail(service.log_path, lines=5) or f"exit code {service.process.returncode}"
                    raise RuntimeError(f"{service.key} stopped during start-up: {reason}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service.key} not serving after {STARTUP_TIMEOUT_S:.0f}s")
                await asyncio.sleep(0.1)

    def _runtime(self, key: str | ServiceName) -> ServiceRuntime:
        runtime = self[key].runtime
        if runtime is None:
            raise TypeError(f"{key} runs as a process")
        return runtime

    async def _close(self) -> None:
        try:
            for channel in self._all_channels:
                await channel.close()
            await self._exit.aclose()
        finally:
            for key in reversed(self._services):
                try:
                    await self.stop(key)
                except Exception as error:  # one service failing to stop must not leave the others running
                    print(f"stopping {key} failed: {error!r}")


@asynccontextmanager
async def running_broker(log_path: Path, *, host: str = LOOPBACK) -> AsyncIterator[str]:
    """The bootstrap address of a Tansu broker with Parley's topics, stopped when the block ends; `host`
    another address than loopback for a test's own network namespace to reach it."""
    # aiokafka logs each refused connection while the broker is still binding its port.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    broker = EmbeddedBroker(host=host, log_path=log_path)
    await broker.start()
    try:
        await ensure_topics(broker.bootstrap_servers, partitions=3)
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@asynccontextmanager
async def start_platform(
    data_dir: Path,
    *services: ServiceName | Instance,
    kafka: str | None = None,
    settings: Mapping[str, Any] | None = None,
    database_url: str = "",
    span_exporter: SpanExporter | None = None,
) -> AsyncIterator[Platform]:
    """Start a broker of its own (unless given `kafka`, one to share) and `services` (see `Platform.start`);
    stop them all when the block ends."""
    async with AsyncExitStack() as stack:
        if kafka is None:
            kafka = await stack.enter_async_context(running_broker(data_dir / "broker.log"))
        platform = Platform(
            kafka, data_dir, _settings_tree(data_dir, kafka, database_url, settings or {}), span_exporter
        )
        try:
            await platform.start(*services)
            yield platform
        finally:
            await platform._close()


def _settings_tree(
    data_dir: Path, kafka: str, database_url: str, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    return _merge(
        {
            "data_dir": data_dir,
            "database_url": database_url,
            "kafka": {"bootstrap_servers": kafka},
            "grpc": {name.value: f"127.0.0.1:{free_port()}" for name in ServiceName},
            "gateway": {"http_port": 0},
            "licence": {"master_key": MASTER_KEY},
            "webhooks": {"master_key": MASTER_KEY},
            "relay": {"listen_address": "127.0.0.1", "candidate_networks": ["127.0.0.0/8"]},
            "recorder": {"listen_address": "127.0.0.1"},
        },
        overrides,
    )


def _has_migrations(name: ServiceName) -> bool:
    return (resources.files(f"services.{name.value}") / "migrations").is_dir()


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` laid on `base`, nested mappings (and settings models) merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _as_env(tree: Mapping[str, Any], prefix: str = "PARLEY_") -> dict[str, str]:
    """Settings as the `PARLEY_*` variables `Settings()` reads (nested with `__`, lists as JSON)."""
    env: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key.upper()}"
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        if isinstance(value, Mapping):
            env.update(_as_env(value, f"{name}__"))
        elif isinstance(value, list | tuple):
            env[name] = json.dumps([_plain(item) for item in value])
        elif value is not None:
            env[name] = str(_plain(value))
    return env


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {k: _plain(v) for k, v in value.model_dump(exclude_unset=True).items()}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
