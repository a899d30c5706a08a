"""licence: apps, licence pools, activations, snTickets, registrations, users, authorisations, accounts

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "licence_apps",
        sa.Column("biz_name", sa.String(64), primary_key=True),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("private_key_sealed", sa.Text(), nullable=False),
        sa.Column("auto_record", sa.Boolean(), nullable=False),
        sa.Column("record_callback_url", sa.String(2048), nullable=False),
        sa.Column("room_status_callback_url", sa.String(2048), nullable=False),
        sa.Column("media_proxy", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("app_id", name="uq_licence_apps_app_id"),
    )
    op.create_table(
        "licence_pools",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("biz_name", sa.String(64), sa.ForeignKey("licence_apps.biz_name"), nullable=False),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("biz_name", "model_id", "type", name="uq_licence_pools_product"),
        sa.CheckConstraint("used >= 0 AND used <= total", name="ck_licence_pools_used"),
    )
    op.create_table(
        "licence_activations",
        sa.Column("sn", sa.String(128), primary_key=True),
        sa.Column("biz_name", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["biz_name", "model_id", "type"],
            ["licence_pools.biz_name", "licence_pools.model_id", "licence_pools.type"],
            name="fk_licence_activations_pool",
        ),
    )
    op.create_index("ix_licence_activations_biz_name", "licence_activations", ["biz_name"])
    op.create_table(
        "licence_sn_tickets",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("sn", sa.String(128), sa.ForeignKey("licence_activations.sn"), nullable=False),
        sa.Column("biz_name", sa.String(64), sa.ForeignKey("licence_apps.biz_name"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_licence_sn_tickets_sn", "licence_sn_tickets", ["sn"])
    op.create_table(
        "licence_registrations",
        sa.Column("sn", sa.String(128), sa.ForeignKey("licence_activations.sn"), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "licence_users",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("biz_name", sa.String(64), sa.ForeignKey("licence_apps.biz_name"), nullable=False),
        sa.Column("open_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("biz_name", "open_id", name="uq_licence_users_app_open_id"),
    )
    op.create_index("ix_licence_users_open_id", "licence_users", ["open_id"])
    op.create_table(
        "licence_authorisations",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("biz_name", sa.String(64), sa.ForeignKey("licence_apps.biz_name"), nullable=False),
        sa.Column("sn", sa.String(128), sa.ForeignKey("licence_activations.sn"), nullable=False),
        sa.Column("open_id", sa.String(128), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("sn", "open_id", name="uq_licence_authorisations_sn_open_id"),
        sa.CheckConstraint("status IN (0, 1)", name="ck_licence_authorisations_status"),
    )
    op.create_index(
        "ix_licence_authorisations_app_open_id", "licence_authorisations", ["biz_name", "open_id"]
    )
    op.create_table(
        "licence_account_status",
        sa.Column("biz_name", sa.String(64), primary_key=True),
        sa.Column("in_arrears", sa.Boolean(), nullable=False),
        sa.Column("last_event_id", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "licence_account_status",
        "licence_authorisations",
        "licence_users",
        "licence_registrations",
        "licence_sn_tickets",
        "licence_activations",
        "licence_pools",
        "licence_apps",
    ):
        op.drop_table(table)
