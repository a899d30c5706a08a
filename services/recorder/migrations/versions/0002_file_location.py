"""recorder jobs: where their files are kept (seed 002 recordResult fileType / filePath); files: their id
in file management

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
    # Files recorded before this revision get their own id from their job and name.
    with op.batch_alter_table("recorder_files") as batch:
        batch.add_column(sa.Column("file_id", sa.String(255), nullable=True))
    op.execute("UPDATE recorder_files SET file_id = 'f' || record_id || '-' || name")
    with op.batch_alter_table("recorder_files") as batch:
        batch.alter_column("file_id", existing_type=sa.String(255), nullable=False)
        batch.create_unique_constraint("uq_recorder_files_file_id", ["file_id"])


def downgrade() -> None:
    with op.batch_alter_table("recorder_files") as batch:
        batch.drop_constraint("uq_recorder_files_file_id", type_="unique")
        batch.drop_column("file_id")
    with op.batch_alter_table("recorder_jobs") as batch:
        batch.drop_column("location")
        batch.drop_column("file_type")
