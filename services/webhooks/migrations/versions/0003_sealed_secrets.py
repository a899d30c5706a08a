"""signing secrets sealed at rest: wider columns, and the secrets kept in plain text until now sealed
with PARLEY_WEBHOOKS__MASTER_KEY

Revision ID: 0003
Revises: 0002
"""

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


def upgrade() -> None:
    plain = [row for row in _rows() if not SealingKey.is_envelope(row.secret)]
    # The key first, before any change: SQLite does not roll back the table rebuild of a failed migration.
    # A new database, or one sealed already, needs none here (the service asks for it anyway).
    key = load_sealing_key(migration_settings()) if plain else None
    with op.batch_alter_table("webhook_secrets") as batch:
        batch.alter_column("secret", type_=sa.Text(), existing_type=sa.String(128), existing_nullable=False)
        batch.alter_column(
            "previous_secret", type_=sa.Text(), existing_type=sa.String(128), existing_nullable=True
        )
    for row in plain if key is not None else []:
        _write(row.biz_name, *(seal_secret(key, value, row.biz_name) if value else None for value in row[1:]))


def downgrade() -> None:
    # The code before 0003 signs with what the row holds: give it the secrets back in plain text.
    sealed = [row for row in _rows() if SealingKey.is_envelope(row.secret)]
    if sealed:
        key = load_sealing_key(migration_settings())
        for row in sealed:
            opened = (key.open(value, context=row.biz_name).decode() if value else None for value in row[1:])
            _write(row.biz_name, *opened)
    with op.batch_alter_table("webhook_secrets") as batch:
        batch.alter_column("secret", type_=sa.String(128), existing_type=sa.Text(), existing_nullable=False)
        batch.alter_column(
            "previous_secret", type_=sa.String(128), existing_type=sa.Text(), existing_nullable=True
        )


def _rows() -> list[sa.Row[tuple[str, str, str | None]]]:
    return list(op.get_bind().execute(sa.select(secrets.c.biz_name, secrets.c.secret, secrets.c.previous_secret)))


def _write(biz_name: str, secret: str | None, previous_secret: str | None) -> None:
    op.get_bind().execute(
        sa.update(secrets)
        .where(secrets.c.biz_name == biz_name)
        .values(secret=secret, previous_secret=previous_secret)
    )
