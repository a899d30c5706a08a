"""Signing secrets sealed at rest: the database holds envelopes, never a `whsec_` secret, while deliveries
still verify at a real receiver with the secret the operator reads; the migration 0003 seals the secrets
earlier versions kept in plain text (and its downgrade opens them again), and a store with another master
key refuses to sign with them: the operator is told, and the delivery fails with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from alembic import command
from parley.webhooks.v1 import webhooks_pb2
from parley.webhooks.v1.webhooks_pb2_grpc import WebhookServiceStub
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from services.core.config import ServiceName, Settings, WebhooksSettings
from services.core.db import create_engine
from services.core.errors import ParleyError, StartupError, from_rpc_error
from services.core.migrations import _config, upgrade_to_head
from services.webhooks.errors import SECRET_UNREADABLE
from services.webhooks.master_key import load_sealing_key
from services.webhooks.signing import new_secret
from services.webhooks.store import seal_secret, signing_secrets
from tests.integration.webhooks.conftest import LOOPBACK_ALLOWED, create_app_with_callbacks, room_facts_on
from tests.integration.webhooks.receiver import Receiver
from tests.integration.webhooks.test_operator_api import until
from tests.postgres import fresh_database_url
from tests.testing import MASTER_KEY, start_platform
from tests.webhook_deliveries import offline_store

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SETTINGS = Settings(webhooks=WebhooksSettings(master_key=MASTER_KEY))
OTHER_KEY = "b3RoZXIgbWFzdGVyIGtleSBvZiBhdCBsZWFzdCAzMiBieXRlcw=="


@pytest.fixture(params=["sqlite", "postgresql"])
async def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        made = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'webhooks.db'}")
        yield made
        await made.dispose()
        return
    async with fresh_database_url("webhooks") as url:
        made = create_engine(url)
        yield made
        await made.dispose()


async def secret_rows(engine: AsyncEngine) -> list[tuple[str, str, str | None]]:
    async with engine.connect() as connection:
        query = select(
            signing_secrets.c.biz_name, signing_secrets.c.secret, signing_secrets.c.previous_secret
        )
        return [tuple(row) for row in await connection.execute(query.order_by(signing_secrets.c.biz_name))]


async def test_the_migration_seals_the_secrets_kept_in_plain_text(unmigrated: AsyncEngine) -> None:
    await upgrade_to_head(unmigrated, "services.webhooks", revision="0002")
    current, previous, only = new_secret(), new_secret(), new_secret()
    async with unmigrated.begin() as connection:
        await connection.execute(
            signing_secrets.insert(),
            [
                {
                    "biz_name": "b_rotated",
                    "secret": current,
                    "previous_secret": previous,
                    "previous_valid_until": NOW + timedelta(hours=1),
                    "created_at": NOW,
                },
                {
                    "biz_name": "b_single",
                    "secret": only,
                    "previous_secret": None,
                    "previous_valid_until": None,
                    "created_at": NOW,
                },
            ],
        )

    # Plain rows and no key in production: the migration stops and says which setting it needs.
    with pytest.raises(StartupError, match="PARLEY_WEBHOOKS__MASTER_KEY is required"):
        await upgrade_to_head(unmigrated, "services.webhooks", Settings(environment="production"))
    await upgrade_to_head(unmigrated, "services.webhooks", SETTINGS)

    rows = await secret_rows(unmigrated)
    stored = [value for row in rows for value in row[1:] if value is not None]
    assert len(stored) == 3 and all(value.startswith("v1:") for value in stored)
    assert not any(secret in value for value in stored for secret in (current, previous, only))
    assert rows[1][2] is None

    store = offline_store(unmigrated, SETTINGS)
    rotated = await store.secrets("b_rotated", NOW)
    assert (rotated.current, rotated.previous) == (current, previous)
    assert rotated.active(NOW) == [current, previous]
    assert (await store.secrets("b_single", NOW)).current == only

    # Running it again finds nothing to do; another master key opens none of them, with a clear error.
    await upgrade_to_head(unmigrated, "services.webhooks", Settings(environment="production"))
    stranger = offline_store(unmigrated, Settings(webhooks=WebhooksSettings(master_key=OTHER_KEY)))
    with pytest.raises(ParleyError) as caught:
        await stranger.secrets("b_single", NOW)
    assert caught.value.kind is SECRET_UNREADABLE
    assert "PARLEY_WEBHOOKS__MASTER_KEY" in caught.value.message

    # A downgrade gives the code before 0003 its plain secrets back.
    async with unmigrated.begin() as connection:
        await connection.run_sync(
            lambda sync: command.downgrade(_config("services.webhooks", sync, SETTINGS), "0002")
        )
    assert await secret_rows(unmigrated) == [("b_rotated", current, previous), ("b_single", only, None)]


async def test_the_database_holds_no_plain_secret_while_deliveries_verify(tmp_path: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        async with (
            fresh_database_url("webhooks") as database_url,
            start_platform(
                tmp_path,
                ServiceName.LICENCE,
                ServiceName.WEBHOOKS,
                settings=LOOPBACK_ALLOWED,
                database_url=database_url,
            ) as platform,
            room_facts_on(platform.kafka) as room_facts,
        ):
            await platform.consumers_joined(ServiceName.WEBHOOKS)
            app = await create_app_with_callbacks(platform.licence, "sealed", room_status_url=receiver.url)
            webhooks = platform.stub(WebhookServiceStub, ServiceName.WEBHOOKS)
            request = webhooks_pb2.GetSecretRequest(biz_name=app.biz_name)

            first = await room_facts.created(app.biz_name, "room-sealed", "alice")
            await receiver.wait_for(lambda r: first in r.acknowledged_ids())
            secret = (await webhooks.GetSecret(request, timeout=10)).secret
            delivered = receiver.acknowledged()[0]
            assert Webhook(secret).verify(delivered.body, delivered.headers)["bizRequestId"] == first

            rotated = (await webhooks.RotateSecret(request, timeout=10)).secret
            second = await room_facts.joined(app.biz_name, "room-sealed", "bob")
            await receiver.wait_for(lambda r: second in r.acknowledged_ids())
            after = next(r for r in receiver.acknowledged() if r.headers["webhook-id"] == second)
            for key in (secret, rotated):
                assert Webhook(key).verify(after.body, after.headers)["bizRequestId"] == second

            engine = create_engine(database_url)
            try:
                ((biz_name, stored, stored_previous),) = await secret_rows(engine)
                assert biz_name == app.biz_name
                assert stored.startswith("v1:") and stored_previous and stored_previous.startswith("v1:")
                for plain in (secret, rotated, secret.removeprefix("whsec_"), rotated.removeprefix("whsec_")):
                    assert plain not in stored and plain not in stored_previous

                # A row sealed under another master key: the operator call and the delivery fail with
                # the reason, and nothing reaches the receiver unsigned or signed with a wrong secret.
                stranger = load_sealing_key(Settings(webhooks=WebhooksSettings(master_key=OTHER_KEY)))
                async with engine.begin() as connection:
                    await connection.execute(
                        signing_secrets.update().values(
                            secret=seal_secret(stranger, new_secret(), app.biz_name), previous_secret=None
                        )
                    )
            finally:
                await engine.dispose()
            await platform.restart(ServiceName.WEBHOOKS)  # forgets the secrets it had opened
            webhooks = platform.stub(WebhookServiceStub, ServiceName.WEBHOOKS)
            with pytest.raises(grpc.RpcError) as refused:
                await webhooks.GetSecret(request, timeout=10)
            assert from_rpc_error(refused.value).kind == SECRET_UNREADABLE
            third = await room_facts.joined(app.biz_name, "room-sealed", "carol")
            listing = webhooks_pb2.ListDeliveriesRequest(biz_name=app.biz_name)

            async def failed_for_the_key() -> bool:
                found = (await webhooks.ListDeliveries(listing, timeout=10)).deliveries
                return any(d.event_id == third and "MASTER_KEY" in d.last_error for d in found)

            await until(failed_for_the_key)
            assert third not in {r.headers["webhook-id"] for r in receiver.requests}
    finally:
        await receiver.stop()
