"""recorder jobs: where their files are kept (seed 002 recordResult fileType / filePath)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recorder_jobs") as batch:
        batch.add_column(sa.Column("file_type", sa.SmallInteger(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("location", sa.String(1024), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("recorder_jobs") as batch:
        batch.drop_column("location")
        batch.drop_column("file_type")
