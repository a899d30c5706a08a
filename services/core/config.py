"""One typed configuration tree for the whole platform, read from `PARLEY_*` environment variables.

Nested fields use `__`: `PARLEY_KAFKA__BOOTSTRAP_SERVERS`, `PARLEY_GRPC__LICENCE`,
`PARLEY_GATEWAY__HTTP_PORT`. Every listener defaults to 127.0.0.1.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
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
    # host:port[,host:port...] of the Kafka brokers.
    bootstrap_servers: str = "127.0.0.1:9092"
    # How long a service waits for the broker before it gives up starting.
    connect_timeout_s: float = 15.0
    # How clients reach the brokers (services/core/kafka_security.py): TLS with SSL and SASL_SSL, a SASL
    # login with SASL_PLAINTEXT and SASL_SSL.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # PEM file of the CA that signed the brokers' certificates; none means the system's CAs.
    ssl_ca_file: Path | None = None


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


class IceServerSettings(BaseModel):
    """One STUN or TURN server, as WebRTC's RTCIceServer names it."""

    urls: list[str]
    username: str | None = None
    credential: SecretStr | None = None


class TurnRestSettings(BaseModel):
    """A TURN server that shares a secret with the gateway (coturn `static-auth-secret`): clients get
    credentials minted for them that expire (services/gateway/ice_servers.py)."""

    urls: list[str] = Field(min_length=1)
    secret: SecretStr
    credential_ttl_s: int = Field(default=86_400, gt=0)


class ClientIceSettings(BaseModel):
    """What `connect` answers as `ice_servers`: none by default (host candidates only, as on loopback)."""

    # Given to every client as configured (STUN servers; TURN with a fixed credential).
    ice_servers: list[IceServerSettings] = []
    turn: TurnRestSettings | None = None


class GatewaySettings(BaseModel):
    # The HTTP API, /docs, /healthz, /livez, /readyz, /metrics and the WebSocket protocol (/ws/v1).
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Each /healthz probe of a service waits at most this long.
    health_timeout_s: float = 1.0
    # Bearer token for the operator routes. Without one they answer only clients on loopback.
    operator_token: SecretStr | None = None
    # WebSocket protocol v1 (docs/protocol.md, "Limits"). A larger frame closes its connection with 1009.
    ws_max_frame_bytes: int = Field(default=64 * 1024, gt=0)
    # Frames a connection may send: this many a second on average, `ws_rate_burst` at once; beyond, 1008.
    ws_rate_per_s: float = Field(default=50.0, gt=0)
    ws_rate_burst: int = Field(default=100, ge=1)
    # Messages waiting to be written to one client; a client that lets more pile up is closed with 1013.
    ws_outbound_queue: int = Field(default=256, ge=1)
    # Failed connects allowed per uid (or device sn) within the window before connect is refused unasked.
    ws_connect_failures: int = Field(default=5, ge=1)
    ws_connect_failure_window_s: float = Field(default=60.0, gt=0)
    # How long `connect` waits for the licence service before answering -101.
    ws_licence_timeout_s: float = Field(default=5.0, gt=0)
    # How long start-up waits for the push consumer to know where it reads before reporting SERVING anyway.
    push_ready_timeout_s: float = Field(default=30.0, gt=0)
    # How long a room command waits for the room manager, and publish/subscribe for the relay's answer.
    rooms_timeout_s: float = Field(default=5.0, gt=0)
    relay_timeout_s: float = Field(default=15.0, gt=0)
    # STUN/TURN servers for clients' peer connections, in `connect`'s answer.
    client_ice: ClientIceSettings = Field(default_factory=ClientIceSettings)
    # Web pages of other origins that may open /ws/v1 and load /sdk/parley.js (docs/web-sdk.md), as
    # `scheme://host[:port]`, or "*" for any. None: pages served from a loopback host (127.0.0.0/8,
    # ::1, localhost) only, besides the gateway's own origin. Clients that send no Origin (devices,
    # server SDKs) are never refused.
    allowed_origins: list[str] | None = None


class RoomsSettings(BaseModel):
    """The room manager's rules (docs/protocol.md, "Rooms" and "Session keeping")."""

    # A session whose socket dropped may resume within this many seconds; after it, it leaves its room
    # with exitType 2.
    session_grace_s: float = Field(default=15.0, gt=0)
    # A room nobody is in (the last participant left, or nobody joined a room an app's backend created)
    # is destroyed after this many seconds.
    empty_room_grace_s: float = Field(default=60.0, gt=0)
    max_participants: int = Field(default=16, ge=2)
    max_feeds_per_participant: int = Field(default=4, ge=1)
    max_subscriptions_per_participant: int = Field(default=16, ge=1)
    # A publish or subscribe whose relay negotiation the gateway has not completed by then is dropped.
    negotiation_timeout_s: float = Field(default=30.0, gt=0)
    # Gateways heartbeat every third of this; a gateway silent for this long has lost its sessions (they
    # enter their grace).
    gateway_lease_s: float = Field(default=15.0, gt=0)
    # A device's call that the user has not answered by then ends with reason no_answer.
    call_ring_timeout_s: float = Field(default=30.0, gt=0)
    # How long the room manager waits for the licence service's word on a device's call.
    licence_timeout_s: float = Field(default=5.0, gt=0)
    # How long an app's autoRecord setting from the licence service is used before being asked again.
    app_settings_ttl_s: float = Field(default=30.0, ge=0)
    # Relays report their load every third of this; a relay silent for this long gets no new rooms.
    relay_lease_s: float = Field(default=15.0, gt=0)
    # Where live room state is kept (docs/decisions.md): "memory" in this process (the embedded default,
    # one room manager), or "redis" at `redis_url`, under `redis_prefix`, so it outlives the process.
    store: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "parley:rooms:"
    # On the Redis store, one room manager leads and owns every room, call and session, by leases of this
    # many seconds it renews every third of it; the others stand by, not serving, and one takes over within
    # about this long once the leader died.
    room_lease_s: float = Field(default=10.0, gt=0)


class LicenceSettings(BaseModel):
    # Base64 of at least 32 random bytes; seals every app's private key at rest. Required in
    # production; in development `parley up` keeps one in the data folder.
    master_key: SecretStr | None = None


class RelaySettings(BaseModel):
    """The media relay's ICE addresses and its media-path timing (docs/relay.md)."""

    # The address the relay's media sockets bind to and its host candidates name; 0.0.0.0 gathers on
    # every interface except loopback (aioice's default).
    listen_address: str = "127.0.0.1"
    # The public address of a 1:1 NAT in front of the relay (mediasoup's announcedIp): host candidates
    # on `listen_address` are announced with this address instead, ports unchanged.
    announced_address: str | None = None
    # One UDP port for the media of every peer connection (LiveKit's rtc.udp_port, mediasoup's
    # WebRtcServer), demultiplexed by ICE username then remote address; 0 lets the kernel pick it. None:
    # a port per peer connection. Needs a listen_address that is not a wildcard, and BUNDLE from clients.
    udp_port: int | None = Field(default=None, ge=0, le=65535)
    # Subscribers' RTP protected and written by the relay's compiled send loop (services/relay/fast_send.py:
    # sendmmsg, one call per socket per forwarded frame), and publishers' SRTP unprotected and RTP headers
    # parsed from C, where it was built at install; off, or where no C compiler was found then, the same
    # steps run in Python.
    compiled_send: bool = True
    # STUN/TURN servers for the relay's own gathering. Empty means host candidates only (no STUN).
    ice_servers: list[IceServerSettings] = Field(default_factory=list)
    # ICE candidates outside these networks are stripped from every SDP the relay receives and sends
    # (tests: 127.0.0.0/8). Host names (mDNS) pass only when every address is allowed.
    candidate_networks: list[str] = Field(default_factory=lambda: ["0.0.0.0/0", "::/0"])
    # A peer whose ICE and DTLS have not connected by then is closed with 5004.
    connect_timeout_s: float = Field(default=15.0, gt=0)
    # Key frame requests sent upstream per published video track: at most one per interval.
    keyframe_interval_s: float = Field(default=0.5, gt=0)
    # Metering ticks on parley.metering.v1 for every live stream at this interval, and at stream end.
    metering_interval_s: float = Field(default=10.0, gt=0)
    # The gRPC address the relay registers with the room manager, for gateways to reach it; none means
    # `grpc.relay`. Each of many relays needs its own (a pod's address, not a service name shared by all).
    advertised_grpc_address: str | None = None
    # This relay's id with the room manager; none means one made up at start.
    relay_id: str | None = None
    # Streams (publications + subscriptions) this relay is sized for: the room manager weighs load by it.
    # With several workers, each worker is sized for this many.
    capacity: int = Field(default=500, ge=1)
    # Relay processes on this node (mediasoup's one worker per core): one event loop uses one core, so a
    # node with more cores runs more workers, each its own relay with the room manager (its own id, gRPC
    # port, load report, and with `udp_port` set, UDP port `udp_port + index`: docs/operations.md, "Media
    # relays"). "auto": one per core this process may run on (its CPU affinity, not a cgroup CPU quota).
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    # A stopping relay keeps serving its streams (and takes no new rooms) until they end or this passes.
    drain_timeout_s: float = Field(default=120.0, ge=0)
    # on_network_weak (docs/relay.md, "Stream control"): every stream is judged once a window; it is weak
    # when its loss over the window reaches the fraction, or its round-trip time the limit; a weak stream
    # is reported at most once per report interval.
    weak_window_s: float = Field(default=5.0, gt=0)
    weak_loss_fraction: float = Field(default=0.1, gt=0, le=1)
    weak_rtt_s: float = Field(default=1.0, gt=0)
    weak_report_interval_s: float = Field(default=10.0, ge=0)
    # Kernel buffers of each media socket (SO_RCVBUF/SO_SNDBUF), bytes; 0 keeps aioice's (256 KiB receive)
    # and the kernel's default. Linux caps them at net.core.rmem_max / wmem_max: raise those too. Bigger
    # is not better past a burst's worth: a relay that falls behind would queue stale media instead.
    udp_receive_buffer_bytes: int = Field(default=1024 * 1024, ge=0)
    udp_send_buffer_bytes: int = Field(default=1024 * 1024, ge=0)
    # A publication whose inbound rate over one window exceeds either ceiling is closed alone (5009):
    # far above a 1080p60 stream (about 8 Mbit/s, under 1000 packets/s) with its audio.
    flood_max_packets_per_s: float = Field(default=3000.0, gt=0)
    flood_max_bitrate_bps: float = Field(default=20_000_000.0, gt=0)
    flood_window_s: float = Field(default=2.0, gt=0)


def cidr_list(text: str) -> list[str]:
    """A setting's comma-separated CIDRs (the SSRF guard's allow-lists, services/core/ssrf.py)."""
    return [part.strip() for part in text.split(",") if part.strip()]


class RecorderSettings(BaseModel):
    """Cloud recording (docs/recording.md, settings `PARLEY_RECORDER__*`)."""

    # Where recording files are written; none means `recordings/` in the data folder.
    storage_dir: Path | None = None
    # The address the recorder's media sockets bind to (its peer connections to the relays gather only
    # here); 0.0.0.0 gathers on every interface except loopback.
    listen_address: str = "127.0.0.1"
    # How long a call to the room manager or a relay may take.
    rpc_timeout_s: float = Field(default=5.0, gt=0)
    # A feed whose relay link has not connected by then is reported as not subscribed (100003).
    connect_timeout_s: float = Field(default=15.0, gt=0)
    # How long the room manager waits for the recorder when a room is created with defaultRecord.
    start_timeout_s: float = Field(default=3.0, gt=0)
    # An S3-compatible object store for finished files (`s3://bucket/prefix`); empty keeps them in the
    # storage folder (docs/recording.md "Storage").
    object_store_url: str = ""
    # The store's endpoint when it is not AWS (`http://127.0.0.1:9000`); http is allowed only here.
    object_store_endpoint: str = ""
    # The store's region (AWS's default when empty).
    object_store_region: str = ""
    # The store's access key id; empty uses the environment's AWS credentials.
    object_store_access_key_id: str = ""
    # The secret of that access key (never logged).
    object_store_secret_access_key: SecretStr = SecretStr("")
    # Encryption at rest in the object store, by the store itself (S3 server-side encryption): "AES256"
    # (keys the store manages, SSE-S3), "aws:kms" or "aws:kms:dsse" (with `object_store_kms_key_id`, or the
    # store's default key); empty sends no encryption header (the bucket's default applies).
    object_store_encryption: Literal["", "AES256", "aws:kms", "aws:kms:dsse"] = ""
    object_store_kms_key_id: str = ""
    # Tries per upload (and per delete) before it counts as failed (100201).
    upload_attempts: int = Field(default=5, ge=1)
    # The first wait between tries, in seconds; then exponential with jitter, at most 10 s (stamina).
    upload_wait_initial_s: float = Field(default=0.5, gt=0)
    # Warnings while recording (seed 002 recording callback, docs/recording.md "Warnings"): a stream that
    # delivers nothing for this long is 500301 (stream disconnected).
    stall_warning_s: float = Field(default=5.0, gt=0)
    # Video slower than this many frames a second over `frame_rate_window_s` is 500302 (low frame rate).
    low_frame_rate_fps: float = Field(default=5.0, ge=0)
    frame_rate_window_s: float = Field(default=5.0, gt=0)
    # Less free space than this in the storage folder is 50 (recording warning); 0 turns the check off.
    low_disk_warning_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    # Watermark images given by http(s) URL are fetched through the SSRF guard (services/core/ssrf.py):
    # these networks (comma-separated CIDRs) are allowed even when private, loopback, link-local, CGNAT,
    # multicast or a metadata address (tests: 127.0.0.1/32).
    image_allowed_targets: str = ""
    # How long a watermark image may take to come, and how large it may be.
    image_fetch_timeout_s: float = Field(default=5.0, gt=0)
    image_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1)

    # Retention (docs/recording.md "Retention"): files of recordings that started more than this many days
    # ago are deleted (event 910003 each); 0 keeps them. `app_retention_days` sets an app's own,
    # `bizName=days` separated by commas (0 keeps that app's files).
    retention_days: float = Field(default=0.0, ge=0)
    app_retention_days: str = ""
    # How often the recorder looks for expired files.
    retention_interval_s: float = Field(default=3600.0, gt=0)

    def image_allowed_networks(self) -> list[str]:
        return cidr_list(self.image_allowed_targets)

    @model_validator(mode="after")
    def _kms_key_needs_kms(self) -> RecorderSettings:
        if self.object_store_kms_key_id and not self.object_store_encryption.startswith("aws:kms"):
            raise ValueError("object_store_kms_key_id needs object_store_encryption aws:kms or aws:kms:dsse")
        return self

    @field_validator("app_retention_days")
    @classmethod
    def _app_retention_days_read(cls, value: str) -> str:
        _retention_by_app(value)
        return value

    def retention_by_app(self) -> dict[str, float]:
        return _retention_by_app(self.app_retention_days)


def _retention_by_app(text: str) -> dict[str, float]:
    by_app: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        biz_name, _, days = part.partition("=")
        try:
            by_app[biz_name.strip()] = float(days)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not bizName=days") from None
    if any(days < 0 or not biz_name for biz_name, days in by_app.items()):
        raise ValueError("each entry is a bizName and 0 or more days")
    return by_app


class BillingSettings(BaseModel):
    """Billing metering (docs/billing.md, settings `PARLEY_BILLING__*`)."""

    # A local day closes (its figures are frozen for statements) this long after it ends; usage that
    # arrives later becomes an adjustment. The relay holds unsent ticks while the broker is away.
    lateness_s: float = Field(default=7200.0, ge=0)
    # How often days due are closed, and prepaid accounts are charged for their open days.
    close_interval_s: float = Field(default=60.0, gt=0)
    rating_interval_s: float = Field(default=1.0, gt=0)
    # Records the consumer writes in one transaction, at most.
    batch_records: int = Field(default=5000, ge=1)
    # A batch smaller than that waits this long for more records before its transaction: at a low rate
    # (facts of joins) every fetch brings one or two records, and each transaction and offset commit costs
    # far more than its rows. Usage reaches the ledger this much later.
    batch_linger_ms: int = Field(default=250, ge=0)
    # The consumer group of billing's replicas (they share its partitions); offsets are in the database.
    group_id: str = "parley-billing"
    # A replica that dies without leaving holds its partitions this long before the group moves them.
    session_timeout_ms: int = Field(default=6000, ge=1000)


class WebhooksSettings(BaseModel):
    """The webhook dispatcher (docs/webhooks.md, settings `PARLEY_WEBHOOKS__*`)."""

    # Seconds before each attempt of a delivery, comma-separated: the first is the delay after the event,
    # each later one the wait after the failed attempt before it. After the last attempt: dead-lettered.
    retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"
    # One attempt (connect, send, answer) may take this long.
    attempt_timeout_s: float = Field(default=15.0, gt=0)
    # A replica holds the delivery it is attempting this long; one that died frees it after this. Must
    # exceed attempt_timeout_s.
    lease_s: float = Field(default=30.0, gt=0)
    # Callback targets in these networks (comma-separated CIDRs) are allowed even when private, loopback,
    # link-local, CGNAT, multicast or a metadata address (tests: 127.0.0.1/32).
    allowed_targets: str = ""
    # Attempts in flight at once, across endpoints (one at a time per endpoint and room, always).
    concurrency: int = Field(default=64, ge=1)
    # How long an app's ids and callback URLs from the licence service are used before being asked again
    # (licence facts update them sooner on the replica that reads them).
    app_cache_ttl_s: float = Field(default=30.0, ge=0)
    # Delivered deliveries and their attempts are deleted this long after delivery (dead-lettered ones
    # stay for redelivery); 0 keeps them. Keep it above the topics' retention: an event read again after
    # its delivery was deleted is delivered again.
    retention_s: float = Field(default=30 * 24 * 3600.0, ge=0)
    # Base64 of at least 32 random bytes; seals every app's signing secret at rest. Required in
    # production; in development `parley up` keeps one in the data folder.
    master_key: SecretStr | None = None

    def retry_delays_s(self) -> list[float]:
        delays = [float(part) for part in self.retry_schedule.split(",") if part.strip()]
        if not delays or any(delay < 0 for delay in delays):
            raise ValueError("PARLEY_WEBHOOKS__RETRY_SCHEDULE: comma-separated seconds, none below 0")
        return delays

    def allowed_networks(self) -> list[str]:
        return cidr_list(self.allowed_targets)


class OpsSettings(BaseModel):
    """The operations listener of each service: /livez, /readyz and /metrics (services/core/ops.py)."""

    host: str = "127.0.0.1"
    # None: no separate listener (the gateway still serves these paths on its HTTP port).
    port: int | None = Field(default=None, ge=0, le=65535)
    # Each readiness check (broker, database) may take this long before it counts as failed.
    readiness_timeout_s: float = Field(default=2.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", env_nested_delimiter="__", extra="ignore")

    # "development" relaxes what a single machine cannot provide (a master key from a secret store);
    # `parley up` sets it. A service started on its own is in production unless told otherwise.
    environment: Literal["development", "production"] = "production"
    # State of a service on its own machine: SQLite files (db/), recordings, a development master key.
    data_dir: Path = Path(".parley")
    # SQLAlchemy URL; empty means one SQLite file per service in the data folder.
    database_url: str = ""
    # Python logging level names; json lines for log collectors, console for people.
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    # Seconds a stopping service keeps serving calls already in flight.
    drain_timeout_s: float = 5.0

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    grpc: GrpcEndpoints = Field(default_factory=GrpcEndpoints)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    licence: LicenceSettings = Field(default_factory=LicenceSettings)
    rooms: RoomsSettings = Field(default_factory=RoomsSettings)
    # False where `parley migrate` runs once before the replicas start (services/core/migrations.py).
    migrate_on_start: bool = True
    relay: RelaySettings = Field(default_factory=RelaySettings)
    recorder: RecorderSettings = Field(default_factory=RecorderSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    # The event loop `python -m services.<name>` runs on: uvloop (faster per packet and per call) or the
    # standard library's asyncio loop.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    def database_url_for(self, service: ServiceName) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'db' / f'{service.value}.db').resolve()}"

    def recordings_dir(self) -> Path:
        return self.recorder.storage_dir or self.data_dir / "recordings"
