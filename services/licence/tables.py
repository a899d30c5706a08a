"""The licence service's tables. `migrations/versions/` creates exactly these; a test compares the two.

Deleting an app deletes its rows for real (`SqlLicenceStore.delete_app` in sql_store.py), so no table
has a `deleted_at` that every query would have to remember. Foreign keys keep the rows honest (no
activation without the pool it consumed, no registration without an activation); deleting an app deletes
children first, so it does not depend on SQLite's foreign-key pragma being on.

Secrets are never stored as given: an app's private key is sealed by the master key (`keys.MasterKey`),
snTickets and device secrets are kept as SHA-256 hashes (`tickets.hash_credential`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.core.db import UtcDateTime
from services.core.outbox import outbox_table
from services.licence.records import HOST, NAME, URL

metadata = MetaData()

# SQLite numbers rows only through an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits.
RowId = BigInteger().with_variant(Integer(), "sqlite")

BIZ_NAME = 64
APP_ID = 64
# identifiers.py: sn at most 128 bytes, model_id and open_id at most 128 characters of ASCII.
SN = 128
MODEL_ID = 128
OPEN_ID = 128
SHA256_HEX = 64
EVENT_ID = 128


apps = Table(
    "licence_apps",
    metadata,
    Column("biz_name", String(BIZ_NAME), primary_key=True),
    Column("app_id", String(APP_ID), nullable=False),
    Column("workspace_id", String(APP_ID), nullable=False),
    Column("name", String(NAME), nullable=False),
    # Base64 of SubjectPublicKeyInfo DER.
    Column("public_key", Text, nullable=False),
    # keys.MasterKey envelope of the PKCS#8 DER private key, with the app_id as associated data.
    Column("private_key_sealed", Text, nullable=False),
    Column("auto_record", Boolean, nullable=False),
    Column("record_callback_url", String(URL), nullable=False),
    Column("room_status_callback_url", String(URL), nullable=False),
    Column("media_proxy", String(HOST), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("app_id", name="uq_licence_apps_app_id"),
)

pools = Table(
    "licence_pools",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("biz_name", String(BIZ_NAME), ForeignKey("licence_apps.biz_name"), nullable=False),
    Column("model_id", String(MODEL_ID), nullable=False),
    # LicenceType: 1 audio call, 2 video call, the proto's numbers.
    Column("type", SmallInteger, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("used", BigInteger, nullable=False),
    UniqueConstraint("biz_name", "model_id", "type", name="uq_licence_pools_product"),
    # Activation's conditional update keeps this true; the constraint makes a bug loud instead of costly.
    CheckConstraint("used >= 0 AND used <= total", name="ck_licence_pools_used"),
)

activations = Table(
    "licence_activations",
    metadata,
    Column("sn", String(SN), primary_key=True),
    Column("biz_name", String(BIZ_NAME), nullable=False, index=True),
    Column("model_id", String(MODEL_ID), nullable=False),
    Column("type", SmallInteger, nullable=False),
    Column("activated_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(
        ["biz_name", "model_id", "type"],
        ["licence_pools.biz_name", "licence_pools.model_id", "licence_pools.type"],
        name="fk_licence_activations_pool",
    ),
)

sn_tickets = Table(
    "licence_sn_tickets",
    metadata,
    Column("token_hash", String(SHA256_HEX), primary_key=True),
    Column("sn", String(SN), ForeignKey("licence_activations.sn"), nullable=False, index=True),
    Column("biz_name", String(BIZ_NAME), ForeignKey("licence_apps.biz_name"), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)

registrations = Table(
    "licence_registrations",
    metadata,
    Column("sn", String(SN), ForeignKey("licence_activations.sn"), primary_key=True),
    Column("secret_hash", String(SHA256_HEX), nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
)

# The open_ids each app has seen, which tells "unknown everywhere" (-20) from "another app's" (-19).
users = Table(
    "licence_users",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("biz_name", String(BIZ_NAME), ForeignKey("licence_apps.biz_name"), nullable=False),
    Column("open_id", String(OPEN_ID), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("biz_name", "open_id", name="uq_licence_users_app_open_id"),
)

authorisations = Table(
    "licence_authorisations",
    metadata,
    # Paging orders by this never-changing insertion number, so a page read later does not repeat one
    # read earlier when users are added in between (new rows sort last).
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("biz_name", String(BIZ_NAME), ForeignKey("licence_apps.biz_name"), nullable=False),
    Column("sn", String(SN), ForeignKey("licence_activations.sn"), nullable=False),
    Column("open_id", String(OPEN_ID), nullable=False),
    # Seed 000 onUpdateAuthorizeStatus: 1 authorised, 0 not (revoked or refused).
    Column("status", SmallInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("sn", "open_id", name="uq_licence_authorisations_sn_open_id"),
    CheckConstraint("status IN (0, 1)", name="ck_licence_authorisations_status"),
    Index("ix_licence_authorisations_app_open_id", "biz_name", "open_id"),
)

# Billing's view of an app's account. No foreign key: billing's events may name an app this service
# has deleted, and the event must still be consumed rather than fail forever.
account_status = Table(
    "licence_account_status",
    metadata,
    Column("biz_name", String(BIZ_NAME), primary_key=True),
    Column("in_arrears", Boolean, nullable=False),
    Column("last_event_id", String(EVENT_ID), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Events staged in the transactions that make them true (services/core/outbox.py).
outbox = outbox_table(metadata, "licence_outbox")
