"""metering ledger: ticks, spans, offsets, apps with plans and accounts, closed days, adjustments,
balance entries, outbox; the room-count table it replaces goes

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.billing.figures import Figures
from services.core.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _figures() -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in Figures.names()]


def upgrade() -> None:
    op.drop_table("billing_room_usage")
    op.create_table(
        "billing_offsets",
        sa.Column("topic", sa.String(128), primary_key=True),
        sa.Column("partition", sa.Integer(), primary_key=True),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "billing_ticks",
        sa.Column("tick_id", sa.String(160), primary_key=True),
        sa.Column("biz_name", sa.String(128), nullable=False),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("uid", sa.String(128), nullable=False),
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("role", sa.SmallInteger(), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_billing_ticks_biz_start", "billing_ticks", ["biz_name", "start_ms"])
    op.create_table(
        "billing_spans",
        sa.Column("span_id", sa.String(320), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("biz_name", sa.String(128), nullable=False),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("uid", sa.String(128), nullable=False),
        sa.Column("engine", sa.SmallInteger(), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=True),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_billing_spans_biz_kind_start", "billing_spans", ["biz_name", "kind", "start_ms"])
    op.create_table(
        "billing_apps",
        sa.Column("biz_name", sa.String(128), primary_key=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("price_audio", sa.BigInteger(), nullable=False),
        sa.Column("price_360p", sa.BigInteger(), nullable=False),
        sa.Column("price_540p", sa.BigInteger(), nullable=False),
        sa.Column("price_720p", sa.BigInteger(), nullable=False),
        sa.Column("price_1080p", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("in_arrears", sa.Boolean(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=True),
        sa.Column("closed_through", sa.Date(), nullable=True),
        sa.Column("prepaid_since", sa.Date(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "billing_days",
        sa.Column("biz_name", sa.String(128), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        *_figures(),
        sa.Column("closed_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "billing_adjustments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("biz_name", sa.String(128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *_figures(),
        sa.Column("posted_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_billing_adjustments_biz_day", "billing_adjustments", ["biz_name", "day"])
    op.create_table(
        "billing_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.String(160), nullable=False, unique=True),
        sa.Column("biz_name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_billing_entries_biz_name", "billing_entries", ["biz_name"])
    op.create_table(
        "billing_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("event_key", sa.String(256), nullable=False),
        sa.Column("event_type", sa.String(256), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("traceparent", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "billing_outbox",
        "billing_entries",
        "billing_adjustments",
        "billing_days",
        "billing_apps",
        "billing_spans",
        "billing_ticks",
        "billing_offsets",
    ):
        op.drop_table(table)
    op.create_table(
        "billing_room_usage",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("biz_name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_billing_room_usage_room_id", "billing_room_usage", ["room_id"])
