"""signing secrets sealed at rest: wider columns, and the secrets kept in plain text until now sealed
with PARLEY_WEBHOOKS__MASTER_KEY

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Callable
from functools import partial

import sqlalchemy as sa
from alembic import op

from services.core.migrations import migration_settings
from services.core.sealing import SealingKey
from services.webhooks.master_key import load_sealing_key
from services.webhooks.store import seal_secret

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

secrets = sa.table(
    "webhook_secrets",
    sa.column("biz_name", sa.String),
    sa.column("secret", sa.Text),
    sa.column("previous_secret", sa.Text),
)


Row = tuple[str, str, str | None]


def upgrade() -> None:
    plain = [row for row in _rows() if not SealingKey.is_envelope(row[1])]
    # The key first, before any change: SQLite does not roll back the table rebuild of a failed migration.
    # A new database, or one sealed already, needs none here (the service asks for it anyway).
    key = load_sealing_key(migration_settings()) if plain else None
    with op.batch_alter_table("webhook_secrets") as batch:
        batch.alter_column("secret", type_=sa.Text(), existing_type=sa.String(128), existing_nullable=False)
        batch.alter_column(
            "previous_secret", type_=sa.Text(), existing_type=sa.String(128), existing_nullable=True
        )
    if key is not None:
        for row in plain:
            _write(row, partial(seal_secret, key))


def downgrade() -> None:
    # The code before 0003 signs with what the row holds: give it the secrets back in plain text.
    sealed = [row for row in _rows() if SealingKey.is_envelope(row[1])]
    if sealed:
        key = load_sealing_key(migration_settings())
        for row in sealed:
            _write(row, partial(_opened, key))
    with op.batch_alter_table("webhook_secrets") as batch:
        batch.alter_column("secret", type_=sa.String(128), existing_type=sa.Text(), existing_nullable=False)
        batch.alter_column(
            "previous_secret", type_=sa.String(128), existing_type=sa.Text(), existing_nullable=True
        )


def _opened(key: SealingKey, envelope: str, biz_name: str) -> str:
    return key.open(envelope, context=biz_name).decode("utf-8")


def _rows() -> list[Row]:
    query = sa.select(secrets.c.biz_name, secrets.c.secret, secrets.c.previous_secret)
    return [(row.biz_name, row.secret, row.previous_secret) for row in op.get_bind().execute(query)]


def _write(row: Row, change: Callable[[str, str], str]) -> None:
    """`change(value, biz_name)` on both secrets of the row."""
    biz_name, secret, previous = row
    op.get_bind().execute(
        sa.update(secrets)
        .where(secrets.c.biz_name == biz_name)
        .values(
            secret=change(secret, biz_name), previous_secret=change(previous, biz_name) if previous else None
        )
    )
