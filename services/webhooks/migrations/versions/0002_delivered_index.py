"""an index for pruning delivered deliveries by when they were delivered

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_webhook_deliveries_delivered", "webhook_deliveries", ["status", "delivered_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_delivered", table_name="webhook_deliveries")
