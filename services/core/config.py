"""One typed configuration tree for the whole platform, read from `PARLEY_*` environment variables.

Nested fields use `__`: `PARLEY_KAFKA__BOOTSTRAP_SERVERS`, `PARLEY_GRPC__LICENCE`,
`PARLEY_GATEWAY__HTTP_PORT`. Every listener defaults to 127.0.0.1.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceName(StrEnum):
    """The seven services, in the order `parley up` starts them (the gateway last: it fronts the rest)."""

    LICENCE = "licence"
    ROOMS = "rooms"
    RELAY = "relay"
    RECORDER = "recorder"
    BILLING = "billing"
    WEBHOOKS = "webhooks"
    GATEWAY = "gateway"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    # How long a service waits for the broker before it gives up starting.
    connect_timeout_s: float = 15.0
    topic_partitions: int = 3


class GrpcEndpoints(BaseModel):
    """The address each service's gRPC server is reached at (and listens on, unless `listen` is set)."""

    licence: str = "127.0.0.1:50051"
    rooms: str = "127.0.0.1:50052"
    relay: str = "127.0.0.1:50053"
    recorder: str = "127.0.0.1:50054"
    billing: str = "127.0.0.1:50055"
    webhooks: str = "127.0.0.1:50056"
    gateway: str = "127.0.0.1:50057"
    # A listen address for this process's own server when it differs from how others reach it
    # (for example 0.0.0.0:50051 in a pod reached as licence:50051).
    listen: str | None = None

    def address_of(self, service: ServiceName) -> str:
        return str(getattr(self, service.value))


class GatewaySettings(BaseModel):
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Each /healthz probe of a service waits at most this long.
    health_timeout_s: float = 1.0
    # Bearer token for the operator routes. Without one they answer only clients on loopback.
    operator_token: SecretStr | None = None


class LicenceSettings(BaseModel):
    # Base64 of at least 32 random bytes; seals every app's private key at rest. Required in
    # production; in development `parley up` keeps one in the data folder.
    master_key: SecretStr | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", env_nested_delimiter="__", extra="ignore")

    # "development" relaxes what a single machine cannot provide (a master key from a secret store);
    # `parley up` sets it. A service started on its own is in production unless told otherwise.
    environment: Literal["development", "production"] = "production"
    data_dir: Path = Path(".parley")
    # SQLAlchemy URL; empty means one SQLite file per service in the data folder.
    database_url: str = ""
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    # Seconds a stopping service keeps serving calls already in flight.
    drain_timeout_s: float = 5.0

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    grpc: GrpcEndpoints = Field(default_factory=GrpcEndpoints)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    licence: LicenceSettings = Field(default_factory=LicenceSettings)

    def database_url_for(self, service: ServiceName) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'db' / f'{service.value}.db').resolve()}"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"
